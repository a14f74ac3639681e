"""What every Triton kernel file of this package shares: the activations and their derivatives as
@triton.jit helpers, the arithmetic-type promotion, and the one allocation point for kernel outputs.
"""
import functools

import torch
import triton
import triton.language as tl

# Test hook: when True, every buffer a kernel should fill starts as NaN, so an element the kernel
# skips shows up as NaN instead of as whatever torch.empty happened to hold.
POISON = False
# Stand-in hook: when set, the number of SMs the launch heuristics assume for every tensor, CPU ones
# included (tools/compile_check.py plans a GPU's launches on a machine without one).
SM_COUNT = None
# Every launch states floating-point contraction (a*b+c as one FMA) instead of inheriting Triton's
# default, which Triton 3.9 warns about on the first compile and says will turn off in 3.10: the
# kernels' rounding and speed then stay what the tests and the tuned tables saw, whatever Triton a
# user has. The interpreter ignores the option.
FP_FUSION = True


@functools.lru_cache(maxsize=None)
def cdiv(a, b):
    """triton.cdiv's (a + b - 1) // b on host ints: since Triton 3.5 triton.cdiv and
    triton.next_power_of_2 are constexpr functions, a few microseconds a call on the host, and a
    launch's plan made ~18 of them a norm forward + backward."""
    return (a + b - 1) // b


def next_pow2(n):
    """triton.next_power_of_2 on host ints (0 for 0, as it gives)."""
    return 1 << (n - 1).bit_length() if n > 0 else 0


def _cuda_sm_count(index):
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device):
    """Streaming multiprocessors of `device`'s GPU; 0 for a CPU tensor's (the interpreter's) device."""
    if SM_COUNT is not None:
        return SM_COUNT
    if device.type != "cuda":
        return 0
    return _cuda_sm_count(device.index if device.index is not None else torch.cuda.current_device())


def fits_int32(op, per_sample, x):
    """In-sample offsets are int32 in every kernel (the per-sample base is int64): refuse a sample of
    2**31 elements or more before anything is launched."""
    if per_sample >= 2 ** 31:
        raise ValueError(f"{op}: one sample holds {per_sample} elements (x {tuple(x.shape)}); the Triton "
                         f"path takes under 2**31 (use impl='ref')")


def in_sample_span(t):
    """The largest offset from a sample's first element to another of t's (N x C x H x W): the
    kernels form in-sample offsets in int32, which a gradient autograd hands over (a slice of a wider
    tensor) can pass with fewer than 2**31 elements of its own."""
    return sum((size - 1) * stride for size, stride in zip(t.shape[1:], t.stride()[1:]) if size)


def flat_hw(t):
    """Whether t's H and W axes merge into one plane index p = h * W + w with one stride."""
    return t.shape[2] == 1 or t.shape[3] == 1 or t.stride(2) == t.shape[3] * t.stride(3)


def pos_stride(t):
    """The stride of p = h * W + w in t (t's H and W axes must merge: flat_hw)."""
    return t.stride(3) if t.shape[3] > 1 else t.stride(2)


def empty(*size, **kwargs):
    """torch.empty for kernel outputs and workspaces (poisoned under the test hook)."""
    t = torch.empty(*size, **kwargs)
    return t.fill_(float("nan")) if POISON else t


# ACT ids are acts.ACT_IDS: 0 none, 1 relu, 2 leaky_relu, 3 elu (alpha 1).

@triton.jit
def act(z, ACT: tl.constexpr, slope):
    # `z < 0` / `z > 0` chosen so that NaN passes through, as in torch.relu / leaky_relu / elu.
    if ACT == 1:
        z = tl.where(z < 0, 0.0, z)
    elif ACT == 2:
        z = tl.where(z < 0, z * slope, z)
    elif ACT == 3:
        # exp(z) - 1 rather than expm1 (not in every Triton backend, nor in the interpreter): its
        # absolute error near 0 is one ulp of 1, far below what follows it (a conv, a norm).
        z = tl.where(z > 0, z, tl.exp(z) - 1.0)
    return z


@triton.jit
def act_grad(dy, z, ACT: tl.constexpr, slope):
    # dy * act'(z), with PyTorch's tie-breaking: at z == 0 the derivative of the negative side.
    if ACT == 1:
        dy = tl.where(z > 0, dy, 0.0)
    elif ACT == 2:
        dy = tl.where(z > 0, dy, dy * slope)
    elif ACT == 3:
        dy = tl.where(z > 0, dy, dy * tl.exp(z))
    return dy


@triton.jit
def up(v):
    # Arithmetic type: fp32 for 16- and 32-bit floats, fp64 for fp64 (resolved at compile time).
    if v.dtype != tl.float64:
        v = v.to(tl.float32)
    return v
