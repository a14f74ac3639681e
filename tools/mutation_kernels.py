"""Hand-written mutants of the kernels that the first pass (docs/mutation-kernels.md, whose 66 mutants
were run by hand and are listed there) did not have: the fused concatenation's tuning keys naming its
activation (table format 3) in kernels/_configs.py, the launcher and the tuner's cases, then each later
session's kernel fixes (norm_act, zinject, _twoface, avg_pool, _impl: the KF, KV, AP, MF, ZG, OT, HS, EZ,
JJ and RG mutants), and the fallback machinery of _impl (FB).

The runner is tools/mutation_loop.py's (one replacement per mutant, written into the source, the
selected tests run with `pytest -x` in a fresh interpreter, in Triton's interpreter; the file
restored from git; it refuses to start with uncommitted changes in the files it mutates):

    .venv/bin/python tools/mutation_kernels.py            # every mutant (a few minutes on 2 cores)
    .venv/bin/python tools/mutation_kernels.py G07 Z36    # some of them

One JSON line per mutant goes to build/mutation-kernels/results.jsonl; exit status 1 when a mutant
survived (the equivalent ones aside), no longer matches, or ended pytest otherwise than passed or
failed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_loop import run  # noqa: E402  (the one runner every list uses)

CF, ZT, TU = "kernels/_configs.py", "kernels/zinject_triton.py", "kernels/tune.py"
NT, NA, ZI = "kernels/norm_act_triton.py", "kernels/norm_act.py", "kernels/zinject.py"
TUNE = ["tests/test_kernel_tune.py"]
# the kernel fixes' tests (docs/mutation-kernels.md, "The fixes' mutants")
NA_T, ZI_T = "tests/test_norm_act.py::test_", "tests/test_zinject.py::test_"
STRIDED = [NA_T + "weight_and_bias_as_strided_views"]
ZSTRIDED = [ZI_T + "strided_bias_and_weight"]
NOZ = [ZI_T + "functional_with_no_z_channels"]
ZCF = [ZI_T + "concat_free_matches_reference"]
TF = "kernels/_twoface.py"
WHOLE = ["tests/test_kernel_tune.py::test_whole_plane_single_pass_is_a_candidate_for_the_planes_the_heuristic_"
         "loops_over"]
POOL_TUNE = ["tests/test_kernel_tune.py::test_a_pool_entry_drives_its_launches_and_only_its_shape"]
AP, POOL = "kernels/avg_pool_triton.py", ["tests/test_avg_pool.py"]
VMAP = ["tests/test_kernel_func.py::test_transform_matches_the_reference"]
EMPTY = [ZI_T + "empty_batch"]
IM = "kernels/_impl.py"
FORMS = [ZI_T + "stride_and_padding_in_every_form_f_conv2d_takes",
         "tests/test_avg_pool.py::test_sizes_in_every_form_torch_takes"]
NUMPY_LAYER = [ZI_T + "layer_sizes_in_numpy_ints_and_a_bad_x"]
NO_X = [ZI_T + "x_with_no_channels"]
RUNNING_ONE = [NA_T + "running_stats_at_batch_one_with_a_channels_last_gradient"]
META = ["tests/test_kernel_plumbing.py::test_meta_tensors_take_the_reference_under_the_interpreter"]
ONE = [NA_T + "reference_at_batch_one_with_a_channels_last_gradient",
       NA_T + "reference_traced_at_batch_one_runs_at_other_batches"]
# InstanceNormAct2d as an nn.InstanceNorm2d (KF13/KF14 mutated its own reset_parameters, now nn.InstanceNorm2d's)
RUNNING = [NA_T + "module_tracks_running_stats_as_instancenorm2d"]
AS_NORM = [NA_T + "module_channel_check_as_instancenorm2d",
           NA_T + "module_eval_mode_and_unbatched_input_as_instancenorm2d"]
MF = ["tests/test_memory_format.py"]
OLD_TORCH = ["tests/test_kernel_plumbing.py"]
EPS0 = [NA_T + "eps_zero_on_a_constant_plane_gives_the_bias_as_torch_does"]
JJ = ["tests/test_kernel_func.py::test_jacrev_of_jacrev_is_refused_naming_what_works"]
APF = "kernels/avg_pool.py"
# Survivors that no test can kill (docs/mutation-kernels.md says why): not counted against the run.
# MF01: torch's ambiguity clause decides only for N x 1 x 1 x 1 strides, where both formats' strides
# are the same (what the ops allocate and read does not change; only a tuning key's layout would).
# FB12: the warning's place is a line of the package at either depth (resolve_impl's, or _warn_once's own); it is
# said once per op and reason by _warn_once, not by the place. FB19: $BICYCLEGAN_KERNELS read at every fallback, not
# once: the same mode unless the process changes os.environ after its first fallback, which nothing documents.
EQUIVALENT: set[str] = {"MF01", "FB12", "FB19"}
SKIP = ""

# (id, file, original text, mutant text, tests); ids go on from docs/mutation-kernels.md's table
REGISTER = ["tests/test_compile.py::test_a_saved_trace_with_the_kernels_loads_in_a_new_process_once_their_ops_"
            "are_registered"]
# session 52: the fallback machinery (fallback, fallbacks, the mode, its warning, lock and dynamo marks): FB01-FB27
KP = "tests/test_kernel_plumbing.py::test_"
FB_T = [KP + "every_fallback_of_auto_is_recorded_warned_of_or_refused",
        KP + "set_fallback_mode_overrides_a_bad_environment_value",
        KP + "a_create_graph_backward_is_recorded_and_not_refused",
        KP + "the_record_is_kept_until_cleared_and_given_as_a_copy",
        KP + "a_fallback_said_anyway_warns_once_in_allow_mode",
        KP + "the_fallback_mode_from_the_environment_and_a_cpu_without_the_interpreter",
        KP + "the_record_counts_every_fallback_of_threads_calling_at_once",
        "tests/test_compile.py::test_a_fallback_in_a_compiled_graph_is_noted_at_its_tracing"]
MUTANTS = [
    ('G07', CF, 'VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd", "zcat.bwd")})\n',
     '', TUNE),
    ('G08', CF, 'VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd", "zcat.bwd")})',
     'VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd",)})', TUNE),
    ('G09', CF, 'FORMAT = 3',
     'FORMAT = 2', TUNE),
    ('G10', CF, '_UNNAMED[old]',
     '_UNNAMED[1]', TUNE),
    ('Z36', ZT, 'lambda: _zcat_heuristic(H * W, C + nz, channels_last), act)',
     'lambda: _zcat_heuristic(H * W, C + nz, channels_last), "leaky_relu")', TUNE),
    ('K04', TU, '"none" if i == 0 else "leaky_relu"))',
     '"leaky_relu"))', TUNE),
    ('K05', TU, 'channels_last, c[5]) for c in zconvs for n in batches["G"]]',
     'channels_last, "leaky_relu") for c in zconvs for n in batches["G"]]', TUNE),
    # the fixes: strided weight and bias views, z of N x 0, an empty batch, the reference at batch 1,
    # InstanceNormAct2d as an nn.InstanceNorm2d
    ('KF01', NT, 'w = weight.contiguous() if weight is not None else _dummy(dy)',
     'w = weight if weight is not None else _dummy(dy)', STRIDED),
    ('KF02', NT, 'b = bias.contiguous() if bias is not None else _dummy(dy)',
     'b = bias if bias is not None else _dummy(dy)', STRIDED),
    ('KF03', NT, 'b = bias.contiguous() if bias is not None else _dummy(x)',
     'b = bias if bias is not None else _dummy(x)', STRIDED),
    ('KF04', ZT, 'r if bias is None else bias.contiguous()',
     'r if bias is None else bias', ZSTRIDED),
    ('KF05', ZI, '    if shape_of(z)[1] == 0:\n        # No z channel',
     '    if shape_of(z)[0] == 0:\n        # No z channel', NOZ + EMPTY),
    ('KF06', ZI, 'return F.conv2d(apply_act(x, act, slope), weight, bias, stride, padding)',
     'return F.conv2d(x, weight, bias, stride, padding)', NOZ),
    ('KF07', ZI, 'return F.conv2d(apply_act(x, act, slope), weight, bias, stride, padding)',
     'return F.conv2d(apply_act(x, act, 0.2), weight, bias, stride, padding)', NOZ),
    ('KF08', ZI, 'return F.conv2d(apply_act(x, act, slope), weight, bias, stride, padding)',
     'return F.conv2d(apply_act(x, act, slope), weight, None, stride, padding)', NOZ),
    ('KF09', ZT, '_target_programs(t.device) // max(1, N * ob))))',
     '_target_programs(t.device) // max(N, N * ob))))', EMPTY),
    ('KF10', NA, 'one = not torch.jit.is_tracing() and not torch.compiler.is_compiling() and x.shape[0] == 1',
     'one = not torch.compiler.is_compiling() and x.shape[0] == 1', ONE),
    ('KF11', NA, 'one = not torch.jit.is_tracing() and not torch.compiler.is_compiling() and x.shape[0] == 1',
     'one = not torch.jit.is_tracing() and not torch.compiler.is_compiling() and x.shape[0] <= 2', ONE),
    ('KF12', NA, 'return torch.batch_norm if one else torch.instance_norm',
     'return torch.instance_norm', ONE),
    ('KF15', NA, 'rest = (self.training, 0.0 if',
     'rest = (True, 0.0 if', RUNNING),
    ('KF16', NA, '0.0 if self.momentum is None else self.momentum',
     '0.1 if self.momentum is None else self.momentum', RUNNING),
    ('KF17', NA, '            if self.affine:\n                raise',
     '            if not self.affine:\n                raise', AS_NORM),
    ('KF18', NA, 'return self._norm_act(x.unsqueeze(0)).squeeze(0)',
     'return self._norm_act(x.unsqueeze(0))', AS_NORM),
    # the backward op's vmap rule (jacrev, a vjp function vmapped), slice by slice
    ('KV01', TF, '            self.backward_op.register_vmap(\n                lambda info, in_dims, *args: '
                 '_vmap_by_slices(info, in_dims, args, self.backward_op))\n',
     '            pass\n', VMAP),
    ('KV02', TF, '_vmap_by_slices(info, in_dims, args, self.backward_op))',
     '_vmap_by_slices(info, in_dims, args, self.forward_op))', VMAP),
    ('KV03', TF, 't.select(d, i) if isinstance(d, int)',
     't.select(0, i) if isinstance(d, int)', VMAP),
    ('KV04', TF, 'for i in range(info.batch_size)]',
     'for i in range(1)]', VMAP),
    ('KV05', TF, '(0,) * len(results[0])',
     '(0,)', VMAP),
    # the z-term add rewritten after the first GPU run (2-D tiles over R = the taps kh summed per row)
    ('ZA1', ZT, 'col = ((iw >= 0) & (iw < W)).to(ACC)', 'col = (iw >= 0).to(ACC)', ZCF),
    ('ZA2', ZT, '((ih >= 0) & (ih < geo["H"])).to(dtype)', '(ih >= 0).to(dtype)', ZCF),
    ('ZA3', ZT, 'zt = tl.zeros([BLOCK_J, BLOCK_O], dtype=ACC) + bias[None, :]',
     'zt = tl.zeros([BLOCK_J, BLOCK_O], dtype=ACC)', ZCF),
    ('ZA4', ZT, '            iw = j * SW - PW + kw', '            iw = j * SW + kw', ZCF),
    # the average pooling op (kernels/avg_pool_triton.py)
    ('AP1', AP, 'row_ok = mask & (oh >= 0) & (oh < OH) & (h < oh * SH - PH + KH)',
     'row_ok = mask & (oh >= 0) & (oh < OH) & (h <= oh * SH - PH + KH)', POOL),
    ('AP2', AP, 'he = tl.minimum(hs + KH, H + PH)', 'he = tl.minimum(hs + KH, H)', POOL),
    ('AP3', AP, 'tl.minimum(we, W) - tl.maximum(ws, 0)', 'tl.minimum(we, W) - ws', POOL),
    ('AP4', AP, 'for dw in tl.static_range((KW + SW - 1) // SW):', 'for dw in tl.static_range(1):', POOL),
    ('AP5', AP, 'col = t % WW', 'col = t % HH', POOL),
    ('AP6', AP, 'for n0 in range(0, src.shape[0], MAX_GRID_N):',
     'for n0 in range(0, min(src.shape[0], MAX_GRID_N), MAX_GRID_N):', POOL),
    ('AP7', AP, '(ph, pw), False, count_include_pad,', '(ph, pw), False, True,', POOL),
    ('AP8', AP, 'acc = acc / tl.where(mask, d, 1.0)', 'acc = acc / 9.0', POOL),
    ('TF1', TF, '    if isinstance(results[0], torch.Tensor):', '    if False:', VMAP),
    # the pooling's launch sites in the tuner and the tables (pool.fwd / pool.bwd)
    ('AP9', AP, '        knobs = knobs or _knobs("pool.bwd", dx, geometry, channels_last)',
     '        knobs = knobs or _heuristic()', POOL_TUNE),
    ('AP10', AP, '    return (*x_shape, *geometry)',
     '    return (*x_shape, *geometry[:2], *geometry[4:], *geometry[2:4])', POOL_TUNE),
    ('AP11', TU, 'for pool in pools for n in batches["D"]]', 'for pool in pools[:0] for n in batches["D"]]', TUNE),
    # the norm's whole-plane candidate (norm_act_triton.candidates)
    ('WP1', NT, 'bhw < next_pow2(HW) <= WHOLE_TILE', 'bhw < next_pow2(HW) < WHOLE_TILE', WHOLE),
    ('WP2', NT, 'if not channels_last and bhw', 'if bhw', WHOLE),
    ('WP3', NT, '    variants = [h] + ([dict(whole, num_warps=16)] if whole else []) + [',
     '    variants = [h] + [', WHOLE),
    ('AP12', TU, '    return {site for site in _configs.SITES if site in names or site.split(".")[0] in names}',
     '    return {site for site in _configs.SITES if site in names}', TUNE),
    # drop-in audit of 2026-12-04: size arguments in torch's forms, x without channels, batch-1 running
    # statistics, meta tensors under the interpreter
    ('DI1', IM, '    items = items * 2 if len(items) == 1 else items', '', FORMS),
    ('DI2', IM, '        items = [operator.index(e) for e in items]', '        items = [int(e) for e in items]', FORMS),
    ('DI3', ZI, 'ks, st = int_pair(who, "kernel_size", kernel_size, 1), int_pair(who, "stride", stride, 1)',
     'ks, st = (kernel_size,) * 2, (stride,) * 2', NUMPY_LAYER),
    ('DI4', ZI, 'if mode == "fused_concat" or shape_of(x)[1] == 0:', 'if mode == "fused_concat":', NO_X),
    ('DI5', NA, 'y = _instance_norm(x, *params,', 'y = torch.instance_norm(x, *params,', RUNNING_ONE),
    ('DI6', IM, '    if runnable and x.dtype in KERNEL_DTYPES and x.device.type != "meta":',
     '    if runnable and x.dtype in KERNEL_DTYPES:', META),
    ('DI7', ZI, 'if not isinstance(x, torch.Tensor) or x.dim() != 4 or shape_of(x)[1] != self.in_channels:',
     'if x.dim() != 4 or shape_of(x)[1] != self.in_channels:', NUMPY_LAYER),
    # memory format parity with torch (kernels/_impl.memory_format and its users)
    ('MF01', IM, 'if size == 0 or stride < least or (d == 0 and least == strides[1]):',
     'if size == 0 or stride < least:', MF),
    ('MF02', IM, '    if strides[1] == 0:\n        return NCHW\n', '', MF),
    ('MF03', AP, 'cl = not transformed() and fmt == torch.channels_last',
     'cl = not transformed() and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()', MF),
    ('MF04', NA, 'norm(x.contiguous(memory_format=fmt) if norm is torch.batch_norm else x, *args)',
     'norm(x, *args)', MF),
    ('MF05', NA, 'return in_format(norm(', 'return (lambda y, fmt: y)(norm(', MF),
    ('MF06', NT, '    fmt = memory_format(x)\n    # Canonical strides',
     '    fmt = CL if x.is_contiguous(memory_format=CL) and not x.is_contiguous() else torch.contiguous_format\n'
     '    # Canonical strides', MF),
    ('MF07', ZI, 'return CL if memory_format(x) == CL and memory_format(weight) == CL else NCHW',
     'return memory_format(x)', MF),
    ('MF08', ZT, 'contiguous(memory_format=memory_format(weight))', 'contiguous()', MF),
    ('MF09', ZT, 'if act == "none" and dtype == x.dtype and x.stride() == dense_strides(x.shape, fmt):',
     'if act == "none" and dtype == x.dtype:', MF),
    ('MF10', ZT, 'return ZCAT(x, z, act, float(slope), out_dtype, fmt == CL)',
     'return ZCAT(x, z, act, float(slope), out_dtype, memory_format(x) == CL)', MF),
    ('MF11', ZI, "    x = in_format(x, concat_format(x, weight))"
                 "  # (so that the conv's output has the reference's layout)\n    y = F.conv2d(",
     "    y = F.conv2d(", MF),
    ('MF12', APF, 'divisor_override, memory_format(x))', 'divisor_override, torch.contiguous_format)', MF),
    # the z injection's gradients in the layouts torch's layer gives (the parameters' own, x's)
    ('ZG01', ZI, '    wx, wz = _split_channels(weight, x.shape[1])',
     '    wx, wz = weight[:, :x.shape[1]], weight[:, x.shape[1]:]', MF),
    ('ZG02', ZI, '    if memory_format(weight) == NCHW:\n        return weight.split(sizes, 1)',
     '    if True:\n        return weight.split(sizes, 1)', MF),
    ('ZG03', ZI, '    if memory_format(weight) == NCHW:\n        return weight.split(sizes, 1)',
     '    if False:\n        return weight.split(sizes, 1)', MF),
    ('ZG04', ZT, 'return g.to(x.dtype, memory_format=fmt)', 'return g.to(x.dtype)', MF),
    # the oldest torch setup.py takes (2.4): annotations its custom_op makes a schema of, no register_vmap there
    ('OT01', ZT, 'stride: List[int], padding: List[int], act: str', 'stride: list[int], padding: List[int], act: str',
     OLD_TORCH),
    ('OT02', AP, 'geometry: List[int], count_include_pad: bool, divisor: int,\n              channels_last',
     'geometry: list[int], count_include_pad: bool, divisor: int,\n              channels_last', OLD_TORCH),
    ('OT03', TF, '        if hasattr(self.backward_op, "register_vmap"):', '        if True:', OLD_TORCH),
    # a constant plane with eps=0: torch's rule (the inverse standard deviation 0 there), and the refusal of
    # jacrev(jacrev(f)) naming what works
    # session 39: a constant plane's mean corrected to its value (eps=0 made such a plane +-1, not act(bias))
    ('HS01', NT, '    return mean + _div(tl.sum(tl.where(mask, x - mean[:, None], 0.0), axis=1), n)', '    return mean',
     EPS0),
    ('EZ01', NT, '    return tl.where(v == 0.0, 0.0, _div(1.0, tl.sqrt_rn(tl.where(v == 0.0, 1.0, v))))',
     '    return _div(1.0, tl.sqrt_rn(v))', EPS0),
    ('EZ02', NT, 'rstd = _rstd(_div(tl.sum(d * d, axis=1), HW * 1.0), eps)',
     'rstd = _div(1.0, tl.sqrt_rn(_div(tl.sum(d * d, axis=1), HW * 1.0) + eps))', EPS0),
    ('EZ03', NT, '    rstd = _rstd(_div(m2, HW * 1.0), eps)\n    w, b', '    rstd = _div(1.0, tl.sqrt_rn(_div(m2, HW '
     '* 1.0) + eps))\n    w, b', EPS0),
    ('EZ04', NT, '        rstd = _rstd(_div(m2, HW * 1.0), eps)\n        _range_apply', '        rstd = _div(1.0, '
     'tl.sqrt_rn(_div(m2, HW * 1.0) + eps))\n        _range_apply', EPS0),
    ('JJ01', TF, '                if gone and any(', '                if False and any(', JJ),
    # a saved trace loads in a new process once register_ops has registered every op (RG01)
    ('RG01', "kernels/__init__.py",
     '    from .avg_pool_triton import OP as POOL\n    from .norm_act_triton import OP as NORM\n',
     '    from .norm_act_triton import OP as NORM\n    POOL = NORM\n', REGISTER),
    # session 52: the fallback machinery
    ('FB01', IM, '_FALLBACKS[op, reason] = _FALLBACKS.get((op, reason), 0) + 1', '_FALLBACKS[op, reason] = 1', FB_T),
    ('FB02', IM, '    with _FALLBACKS_LOCK:\n        _FALLBACKS[op, reason]',
     '    if True:\n        _FALLBACKS[op, reason]', FB_T),
    ('FB03', IM, '    with _FALLBACKS_LOCK:\n        seen = dict(_FALLBACKS)',
     '    if True:\n        seen = dict(_FALLBACKS)', FB_T),
    ('FB04', IM, '        if clear:\n            _FALLBACKS.clear()',
     '        if True:\n            _FALLBACKS.clear()', FB_T),
    ('FB05', IM, '        if clear:\n            _FALLBACKS.clear()',
     '        if False:\n            _FALLBACKS.clear()', FB_T),
    ('FB06', IM, 'seen = dict(_FALLBACKS)', 'seen = _FALLBACKS', FB_T),
    ('FB07', IM, 'if mode == "strict" and refusable:', 'if mode == "strict":', FB_T),
    ('FB08', IM, 'if mode == "strict" and refusable:', 'if mode != "allow" and refusable:', FB_T),
    ('FB09', IM, 'if mode != "allow" or warn:', 'if mode == "warn" or warn:', FB_T),
    ('FB10', IM, 'if mode != "allow" or warn:', 'if mode != "allow":', FB_T),
    ('FB11', IM, '        _warn_once(f"{op}: runs',
     '        (lambda m: warnings.warn(m, RuntimeWarning, stacklevel=2))(f"{op}: runs', FB_T),
    ('FB12', IM, 'warnings.warn(message, RuntimeWarning, stacklevel=3)',
     'warnings.warn(message, RuntimeWarning, stacklevel=1)', FB_T),
    ('FB13', IM, '    if mode not in FALLBACK_MODES:\n        raise ValueError(f"set_fallback_mode',
     '    if False:\n        raise ValueError(f"set_fallback_mode', FB_T),
    ('FB14', IM, '        previous = "allow"\n', '        previous = "strict"\n', FB_T),
    ('FB15', IM, '    _fallback_mode = mode\n    return previous', '    _fallback_mode = mode\n    return mode', FB_T),
    ('FB16', IM, '        previous = get_fallback_mode()\n    except ValueError:',
     '        previous = get_fallback_mode()\n    except KeyError:', FB_T),
    ('FB17', IM, 'mode = os.environ.get(FALLBACK_ENV, "") or "allow"',
     'mode = os.environ.get(FALLBACK_ENV, "allow")', FB_T),
    ('FB18', IM, 'mode = os.environ.get(FALLBACK_ENV, "") or "allow"',
     'mode = os.environ.get(FALLBACK_ENV, "").lower() or "allow"', FB_T),
    ('FB19', IM, '        _fallback_mode = mode\n    return _fallback_mode',
     '        return mode\n    return _fallback_mode', FB_T),
    ('FB20', IM, '        if mode not in FALLBACK_MODES:\n            raise ValueError(f"${FALLBACK_ENV}',
     '        if False:\n            raise ValueError(f"${FALLBACK_ENV}', FB_T),
    ('FB21', IM, 'fallback._dynamo_marked_constant = True', 'pass', FB_T),
    ('FB22', IM, '    if x.device.type != "meta":\n        fallback(op', '    if True:\n        fallback(op', FB_T),
    ('FB23', IM, 'warn=x.is_cuda and not runnable)', 'warn=False)', FB_T),
    ('FB24', IM, 'def set_fallback_mode(mode: str) -> str:\n',
     'def set_fallback_mode(mode: str = "allow") -> str:\n', FB_T),
    ('FB25', IM, '    global _fallback_mode\n    if mode not in FALLBACK_MODES:',
     '    if mode not in FALLBACK_MODES:', FB_T),
    ('FB26', IM, '    if _fallback_mode is None:\n        mode = os.environ',
     '    if True:\n        mode = os.environ', FB_T),
    ('FB27', IM, 'interpreting._dynamo_marked_constant = True', 'pass', FB_T),
]

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], MUTANTS, EQUIVALENT, SKIP, "mutation-kernels"))
