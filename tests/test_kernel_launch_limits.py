"""What the compiled (GPU) path refuses and Triton's interpreter lets through: launch grids past
CUDA's limits (axis 0 up to 2**31 - 1 programs, axes 1 and 2 up to 65535), in-sample offsets past
int32, and stores past an output's end (the interpreter writes them into the storage without
trapping them: guard regions around every output catch them). For the first two the launchers run
on meta tensors (any size, no memory) with the kernels replaced by a recorder of their grids and
arguments, so these checks need neither a GPU nor the memory of the shapes they plan for.
"""
import pytest
import torch

import bicyclegan.kernels as K
from bicyclegan.kernels import avg_pool_triton, norm_act_triton, zinject_triton
from bicyclegan.kernels._impl import interpreting

pytestmark = pytest.mark.skipif(not interpreting(), reason="plans launches as Triton's interpreter runs them")

META = torch.device("meta")
GRID_LIMITS = (2 ** 31 - 1, 65535, 65535)


@pytest.fixture
def launches(monkeypatch):
    """[(kernel name, grid, args)] of every kernel launch, none of them run."""
    seen = []
    kernel_type = type(norm_act_triton._fwd_kernel)  # InterpretedFunction under TRITON_INTERPRET=1

    def run(self, *args, grid, **kwargs):
        seen.append((self.fn.__name__, tuple(grid) + (1,) * (3 - len(grid)), args))
    monkeypatch.setattr(kernel_type, "run", run)
    return seen


def _check_grids(launches):
    assert launches
    for name, grid, _ in launches:
        assert all(1 <= g <= limit for g, limit in zip(grid, GRID_LIMITS)), (name, grid)


def test_a_batch_past_65535_samples_fits_the_grid(launches):
    """z injection put the batch on grid axis 2 (and _zq on axis 1): 65536 samples or more could not
    launch on a GPU ('invalid argument'), though the interpreter ran them."""
    N = 70000  # (CPU tensors, small: autocast's checks refuse meta ones)
    x = torch.zeros(N, 1, 2, 2, requires_grad=True)
    z = torch.zeros(N, 1, requires_grad=True)
    w = torch.zeros(2, 2, 3, 3, requires_grad=True)
    for mode in ("concat_free", "fused_concat"):
        y = K.z_concat_conv(x, z, w, torch.zeros(2), 1, 1, impl="triton", mode=mode)
        torch.autograd.grad(y.sum(), [x, z, w])
    K.instance_norm_act(x, impl="triton").sum().backward()
    _check_grids(launches)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_many_channels_fit_the_grid(launches, fmt):
    """The norm put its channel tiles on grid axis 1: with 1-channel tiles (NCHW planes of 1024
    positions or more) 65536 channels or more could not launch."""
    x = torch.empty(2, 70000, 32, 32, device=META).to(memory_format=fmt).requires_grad_()
    K.instance_norm_act(x, impl="triton").sum().backward()
    _check_grids(launches)


def _span(sizes, strides):
    return sum((n - 1) * s for n, s in zip(sizes, strides))


def test_a_gradient_sliced_from_a_wider_tensor_is_read_within_int32(launches):
    """The z-injection backwards read the incoming gradient through its strides; a channel slice of a
    channels_last tensor of 2**30 channels (a torch.cat's gradient) is a gradient of 10 x 2 x 2
    elements whose in-sample offsets pass 2**31: it is copied dense first (it was read as it was,
    its offsets wrapping in the kernels' int32 arithmetic)."""
    wide = torch.empty(1, 2 ** 30, 2, 2, device=META).to(memory_format=torch.channels_last)
    gy = wide[:, :10]
    assert _span(gy.shape[1:], gy.stride()[1:]) >= 2 ** 31
    x = torch.empty(1, 8, 2, 2, device=META).to(memory_format=torch.channels_last)
    zinject_triton._zcat_backward(gy, x, torch.empty(1, 2, device=META), "leaky_relu", 0.2)
    zinject_triton._zterm_grad(gy, zinject_triton._geometry((3, 3), (1, 1), (1, 1), 2, 2))
    (_, _, zcat), (_, _, zterm) = launches
    assert _span((10, 4), zcat[10:12]) < 2 ** 31  # (sgc, sgp): channels, positions
    assert _span((10, 2, 2), zterm[9:12]) < 2 ** 31  # (sgo, sgh, sgw)


GUARD = 64  # elements of sentinel before and after every kernel output


@pytest.fixture
def guarded(monkeypatch):
    """Every kernel output and workspace lies between two guard regions of -7 in one storage: a store
    past a tile's end (a missing mask) lands there. Triton's interpreter writes out-of-bounds stores
    into the storage as a GPU would into a neighbour's memory (it does not trap them)."""
    from bicyclegan.kernels import _triton_common
    storages = []

    def place(t):
        big = torch.full((2 * GUARD + t.untyped_storage().nbytes() // t.element_size(),), -7.0, dtype=t.dtype)
        storages.append(big)
        return big.as_strided(t.shape, t.stride(), GUARD)

    def empty(*size, **kwargs):
        return place(torch.empty(*size, **kwargs))
    for module in (_triton_common, norm_act_triton, avg_pool_triton):  # (each imported the name: each patched)
        monkeypatch.setattr(module, "empty", empty)
    monkeypatch.setattr(zinject_triton, "_empty", empty)
    yield storages
    assert storages
    for big in storages:
        assert (big[:GUARD] == -7).all() and (big[-GUARD:] == -7).all(), "a kernel stored past its output"


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("plan", [{}, {"block_hw": 4}, {"block_hw": 4, "split": 3}])
def test_no_store_past_an_output_at_masked_tails(guarded, fmt, plan):
    x = torch.randn(2, 3, 5, 7).to(memory_format=fmt).requires_grad_()
    w, b = torch.rand(3, requires_grad=True), torch.rand(3, requires_grad=True)
    y = norm_act_triton.instance_norm_act_triton(x, "elu", 0.2, 1e-5, w, b, **plan)
    torch.autograd.grad(y.pow(2).sum(), [x, w, b])
    z = torch.randn(2, 3, requires_grad=True)
    wz = torch.randn(5, 6, 3, 3, requires_grad=True)
    for mode in ("concat_free", "fused_concat"):
        y = K.z_concat_conv(x, z, wz, torch.rand(5, requires_grad=True), 2, 1, impl="triton", mode=mode)
        torch.autograd.grad(y.pow(2).sum(), [x, z, wz])
    # the discriminators' between-scale pooling (3x3, stride 2, pad 1, as the reference's), forward and backward
    y = K.avg_pool2d(x, 3, 2, 1, count_include_pad=False, impl="triton")
    torch.autograd.grad(y.pow(2).sum(), [x])
