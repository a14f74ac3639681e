"""One kernel op, two faces: a torch.autograd.Function for eager code and a torch.library custom op
(with fake implementations and registered autograd) for code that torch.compile traces.

Why two. Under torch.compile an autograd.Function around Triton launches is traced into, and the
launches break the graph; a custom op with a fake (shape-only) implementation is opaque to the
compiler, so a network using it compiles to one graph and the compiler fuses what lies between the
ops. In eager code the custom op's dispatch costs about 11 us a call (measured on the 2-core
development CPU: 14 us against 3 us for a plain Python call; a training step makes about 150 such
calls), so eager code takes the cheaper Function. Both faces run the same two implementations.

What a kernel provides (see TwoFacedOp):
- forward(*inputs) -> a tensor (the op's result), or a tuple of tensors whose [0] is the result and
  the rest only kept for backward (no 1-tuples: older torch reads a (Tensor) schema as one tensor);
- save(inputs, outputs) -> (tensors, args): what backward needs, tensors (None allowed) and others;
- backward(grad, *tensors, *args, *needs) -> one tensor per differentiable input (a lone tensor
  when there is one; a custom op cannot return None): where its need_<name> flag is False it may
  skip the work and return an empty (numel 0) tensor, or compute it anyway (the flags are then only
  the signature's); either way that gradient is dropped (None) on the way out;
- fakes of both, with the same signatures, for tracing;
- recompute(tensors, args, inputs) -> (the differentiable inputs, the op's result recomputed from
  them in plain PyTorch), for a backward with create_graph=True; `inputs` are forward's inputs
  with every tensor replaced by None (its scalars: eps, dtypes). It raises where what was saved
  cannot give the inputs.
Each implementation is a plain function with type annotations (custom_op infers the schema from
them).

Twice differentiable. A backward with create_graph=True (a gradient penalty such as R1 or
WGAN-GP, any double backward) runs with grad mode on; there the input gradients are those of the
plain PyTorch recomputation (torch.autograd.grad of it with create_graph=True), so they carry a
graph back to the inputs, to the weights before the op and to the incoming gradient. Every other
backward runs the kernels: first-order training pays nothing for it. An op without recompute
refuses such a backward at once: returning the kernels' gradients there would drop the terms
through the op (torch's once_differentiable only raises when those terms are reached, which
torch.autograd.grad(..., inputs) may never do: its result would be silently wrong). The custom-op
face does the same in eager code (torch.jit.trace, direct calls); under torch.compile, torch's
compiled backward itself refuses double backward ("torch.compile with aot_autograd does not
currently support double backward"), for any op in the graph.

torch.func. Under a transform a second Function runs, in the forward / setup_context form with a
vmap rule (an op's own `vmap`, which folds the vmapped dimension into one launch, else one launch
per slice), so grad, vjp, jacrev, vmap and their compositions take the kernels' forward; their
backward builds a graph (torch.func.grad asks for create_graph), so it is the recompute's.
Forward-mode AD is refused. Eager code keeps the forward(ctx, ...) Function: torch's apply of a
setup_context one binds the arguments to forward's signature (inspect) at every call.
"""
import contextlib
import functools
import inspect

import torch

from ._impl import fallback


def _as_tuple(outputs):
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


def _on_device(t):
    # Triton launches on the current CUDA device, which need not be the tensor's (e.g. rank 1's GPU).
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


class TwoFacedOp:
    """Call it like the op: `op(*inputs)` returns forward's first output, differentiable.

    name: "namespace::op"; the backward custom op is registered as name + "_backward".
    differentiable: names of forward's leading parameters that may need gradients; backward's last
    parameters must be need_<name> for each of them, in the same order.
    check(*inputs): raises for inputs the op's Python face refuses (their sizes); the custom op runs it first.
    """

    def __init__(self, name, forward, backward, save, forward_fake, backward_fake, differentiable, recompute=None,
                 vmap=None, check=None):
        fwd_params = list(inspect.signature(forward).parameters)
        bwd_params = list(inspect.signature(backward).parameters)
        needs = [f"need_{d}" for d in differentiable]
        if fwd_params[:len(differentiable)] != list(differentiable) or bwd_params[-len(needs):] != needs:
            raise TypeError(f"{name}: forward must start with {list(differentiable)} and backward end with "
                            f"{needs}; got forward{tuple(fwd_params)}, backward{tuple(bwd_params)}")
        self.n_inputs, self.n_grads = len(fwd_params), len(differentiable)
        self._save, self._recompute, self._name, self._vmap = save, recompute, name, vmap

        @functools.wraps(forward)
        def run_forward(*inputs):
            with _on_device(inputs[0]):
                return forward(*inputs)

        @functools.wraps(backward)
        def run_backward(grad, *rest):
            with _on_device(grad):
                return backward(grad, *rest)

        @functools.wraps(forward)
        def forward_unaliased(*inputs):
            # A graph that torch.jit.trace made keeps this face and none of the Python that called it: the
            # checks of the inputs' sizes there ran on the example only (_impl.shape_of), and a wrong input
            # would reach the kernels (read out of bounds). Eager code's Function has had them.
            if check is not None:
                check(*inputs)
            # A custom op may not return an input or a view of one (e.g. act "none" handing back x).
            outputs = run_forward(*inputs)
            held = {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor) and t.numel()}
            owned = tuple(o.clone() if o.numel() and o.untyped_storage().data_ptr() in held else o
                          for o in _as_tuple(outputs))
            return owned[0] if isinstance(outputs, torch.Tensor) else owned

        self.run_forward, self.run_backward = run_forward, run_backward
        self.forward_op = torch.library.custom_op(name, forward_unaliased, mutates_args=())
        self.backward_op = torch.library.custom_op(name + "_backward", run_backward, mutates_args=())
        self.forward_op.register_fake(forward_fake)
        self.backward_op.register_fake(backward_fake)
        self.forward_op.register_autograd(
            lambda ctx, grad, *_unused: self._grads(ctx, grad, self.backward_op), setup_context=self._setup)
        # jacrev vmaps the function vjp returned, which runs the backward op (see _grads): one launch per
        # slice, as torch's fallback would, without the fallback's warning asking users to report the
        # missing rule to PyTorch. (torch 2.4's custom ops have no register_vmap: there the fallback runs.)
        if hasattr(self.backward_op, "register_vmap"):
            self.backward_op.register_vmap(
                lambda info, in_dims, *args: _vmap_by_slices(info, in_dims, args, self.backward_op))
        self.function, self.func_function = self._eager_function_class(name), self._function_class(name)

    def __call__(self, *inputs):
        # torch.jit.trace takes the custom op too, and records it as one node (saved with the trace):
        # through the Function it recorded the launches, each size read then a traced tensor that a
        # launch took for a pointer.
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return _as_tuple(self.forward_op(*inputs))[0]
        if transformed():
            return self.func_function.apply(*inputs)[0]
        return self.function.apply(*inputs)

    def _setup(self, ctx, inputs, output):  # (register_autograd passes these by name)
        tensors, ctx.args = self._save(inputs, _as_tuple(output))
        ctx.scalars = tuple(None if isinstance(a, torch.Tensor) else a for a in inputs)  # for recompute
        # An input made under torch.inference_mode and used outside it cannot be saved for backward
        # (autograd refuses); a copy can, as the reference's layers save the concatenation they made.
        if not torch.is_inference_mode_enabled():
            tensors = [t.clone() if t is not None and t.is_inference() else t for t in tensors]
        ctx.save_for_backward(*tensors)

    def _grads(self, ctx, grad, backward, transform=False):
        needs = tuple(ctx.needs_input_grad[:self.n_grads])
        # The engine runs a backward with grad mode on exactly when create_graph=True (under
        # torch.compile the traced backward runs with it off: the kernels).
        saved = ctx.saved_tensors
        # The function torch.func.vjp returns, called after vjp has returned, runs this with create_graph
        # on the transform's tensors, whose level is gone: no graph can be built through them (the
        # recompute's gradients come out wrong), so the kernels' first-order gradients, through the
        # custom op (a transform's tensor has no storage for a kernel to read; the dispatcher hands
        # over the plain tensors inside). Its result refuses a second backward (no autograd on it).
        gone = transform and any(_level_gone(t) for t in (grad, *saved))
        # A batch of gradients at once (torch.autograd.grad's is_grads_batched, jacobian's vectorize=True) runs this
        # under vmap: the backward op's vmap rule takes it (a kernel cannot read a batched tensor's storage).
        batched = grad is not None and (torch._C._functorch.is_batchedtensor(grad)
                                        or torch._C._functorch.is_legacy_batchedtensor(grad))
        if torch.is_grad_enabled() and not gone:
            grads = self._grads_with_graph(ctx, grad, needs)
        else:
            try:
                grads = _as_tuple((self.backward_op if gone or batched else backward)(grad, *saved, *ctx.args,
                                                                                      *needs))
            except RuntimeError as e:
                # An outer transform differentiating those first-order gradients (jacrev(jacrev(f)): the
                # inner vjp's function runs after the inner vjp returned) reaches the backward op, which has
                # no derivative: torch then raised from deep inside (autograd.Function and setup_context).
                if gone and any(i.key() == torch._C._functorch.TransformType.Grad
                                for i in torch._C._functorch.get_interpreter_stack() or ()):
                    raise NotImplementedError(
                        f"{self._name}: a second reverse-mode transform over the function that torch.func.vjp "
                        f"returned, called after vjp has returned (as jacrev(jacrev(f)) does), is not "
                        f"implemented for the Triton kernels; differentiate a grad instead (jacrev(grad(f)) "
                        f"for a scalar f, or grad(grad(f))), or build the layers with impl='ref'") from e
                raise
        return tuple(g if need else None for g, need in zip(grads, needs)) + (None,) * (self.n_inputs - self.n_grads)

    def _no_forward_ad(self):
        raise NotImplementedError(
            f"{self._name}: forward-mode AD (torch.func.jvp, jacfwd, hessian; torch.autograd.forward_ad) is not "
            f"implemented for the Triton kernels; build the layers with impl='ref' for it")

    def _grads_with_graph(self, ctx, grad, needs):
        """The input gradients of the plain PyTorch recomputation, themselves differentiable."""
        if self._recompute is None:
            raise RuntimeError(
                f"{self._name}: the Triton kernels' gradients are first order; a backward with "
                f"create_graph=True (a gradient penalty, double backward) through this op would "
                f"miss its second-order terms. Build the layers it passes through with impl='ref'")
        inputs, output = self._recompute(ctx.saved_tensors, ctx.args, ctx.scalars)
        fallback(self._name.split("::")[-1], "a backward with create_graph=True (a gradient penalty, double "
                 "backward, torch.func's grad) differentiates the reference, recomputed", refusable=False)
        wanted = [t for t, need in zip(inputs, needs) if need]
        found = iter(torch.autograd.grad(output, wanted, grad, create_graph=True, allow_unused=True)
                     if wanted else ())
        return tuple(next(found) if need else None for need in needs)

    def _eager_function_class(self, name):
        """The Function outside torch.func transforms, in the forward(ctx, ...) form: torch's apply of a
        setup_context Function binds the arguments to forward's signature at each call (inspect); a toy
        op's fwd + bwd took 106-154 us a call that way against 94-98 us (medians of 4000 calls, the
        loaded 2-core development CPU), at ~150 op calls a training step."""
        op = self

        def forward(ctx, *inputs):
            outputs = _as_tuple(op.run_forward(*inputs))
            op._setup(ctx, inputs, outputs)
            return outputs[0]

        def backward(ctx, grad):
            return op._grads(ctx, grad, op.run_backward)

        return type(_class_name(name), (torch.autograd.Function,),
                    {"forward": staticmethod(forward), "backward": staticmethod(backward),
                     "jvp": staticmethod(lambda ctx, *tangents: op._no_forward_ad())})

    def _function_class(self, name):
        """The Function under torch.func transforms."""
        op = self

        # The forward / setup_context split (not forward(ctx, ...)) and a vmap rule are what torch.func
        # transforms (grad, vjp, jacrev, vmap) need of a Function. forward returns every output; the
        # ones only kept for backward (statistics, the conv's input) are not differentiable.
        def forward(*inputs):
            # An output that is an input (the conv's act 'none' input, kept for backward) as a view of it:
            # autograd refuses to save an input returned as it is from a setup_context Function.
            held = {id(t) for t in inputs if isinstance(t, torch.Tensor)}
            return tuple(o.view_as(o) if id(o) in held else o for o in _as_tuple(op.run_forward(*inputs)))

        def setup_context(ctx, inputs, output):
            ctx.mark_non_differentiable(*output[1:])
            ctx.set_materialize_grads(False)  # (no zeros made for those outputs' absent gradients)
            op._setup(ctx, inputs, output)

        def backward(ctx, grad, *_kept):
            if grad is None:  # (not materialised: the result got no gradient, as in some double backwards)
                return (None,) * op.n_inputs
            return op._grads(ctx, grad, op.run_backward, transform=True)

        def jvp(ctx, *tangents):
            op._no_forward_ad()

        def vmap(info, in_dims, *inputs):
            if op._vmap is not None:
                done = op._vmap(info, in_dims, inputs, cls.apply)
                if done is not None:
                    return done
            return _vmap_by_slices(info, in_dims, inputs, cls.apply)

        cls = type(_class_name(name), (torch.autograd.Function,),
                   {k: staticmethod(f) for k, f in (("forward", forward), ("setup_context", setup_context),
                                                    ("backward", backward), ("jvp", jvp), ("vmap", vmap))})
        return cls


def _class_name(name):
    # Classes built with type() so that autograd names the grad_fn after the op (e.g. InstanceNormActFunctionBackward).
    return name.split("::")[-1].title().replace("_", "") + "Function"


def _vmap_by_slices(info, in_dims, inputs, apply):
    """The op on each of the vmapped slices in turn, stacked: right for any op, one launch per slice
    (an op's own vmap rule folds the vmapped dimension into one launch where it can). in_dims holds
    an int for each vmapped tensor (a list input, e.g. a stride, has a list of Nones)."""
    results = [apply(*(t.select(d, i) if isinstance(d, int) else t for t, d in zip(inputs, in_dims)))
               for i in range(info.batch_size)]
    if isinstance(results[0], torch.Tensor):  # a backward op of one differentiable input returns a lone tensor
        return torch.stack(results), 0
    return tuple(torch.stack(outs) for outs in zip(*results)), (0,) * len(results[0])


def _level_gone(t):
    """Whether t belongs to a torch.func transform that has returned (none of the transforms running)."""
    level = -1 if t is None else torch._C._functorch.maybe_get_level(t)
    return level != -1 and level not in {i.level() for i in torch._C._functorch.get_interpreter_stack() or ()}


def transformed():
    """Whether a torch.func transform (grad, vjp, jacrev, vmap) is running: its backward differentiates
    with a graph (create_graph) whatever the user asked. Not under torch.compile, whose tracing runs
    under an interpreter of its own (functionalization) and calls the custom op."""
    return not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is not None
