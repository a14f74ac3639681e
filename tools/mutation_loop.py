"""Hand-written mutants of the training loop, the CUDA-graph step, the training report and the
model's learning-rate and moving-average code (results and survivors: docs/mutation-engine.md,
"The training loop, the graph step and the report"); later passes added sync_bn, main_decides and the
report's envelope, the evaluation's shares, the launcher watched and sample's shares, and D's outputs
shared between the step's phases and the weights' check (SD, NF: "D's shared outputs, the weights'
check, interpolate's refusals and shares").

Each mutant is one textual replacement that must match exactly once; it is written into the source
file itself, the selected tests run (`pytest -x`, in a fresh interpreter), and the file is restored
from git. Do not use the worktree for anything else while it runs: it refuses to start with
uncommitted changes in the files it mutates and restores them however it ends.

    .venv/bin/python tools/mutation_loop.py            # every mutant (about 40 min on 2 cores)
    .venv/bin/python tools/mutation_loop.py T05 R13    # some of them

One JSON line per mutant goes to build/mutation-loop/results.jsonl (killed or survived, the time,
the first failing test). A replacement that no longer matches (the source changed) is reported as
such, not run. Exit status 1 when a mutant survived (the equivalent ones aside), no longer matches,
or ended pytest otherwise than passed or failed: a run that judged less than it was asked to is
not a pass.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANT_TIMEOUT = 1800  # seconds of one mutant's tests; longer is a mutant that never ends: killed
T, G, R, M = "engine/trainer.py", "engine/graph.py", "engine/report.py", "engine/model.py"
C, N, RT, CLI = "engine/checkpoint.py", "engine/networks.py", "engine/runtime.py", "engine/cli.py"
TR = ["tests/test_trainer_loop.py", "tests/test_trainer.py", "tests/test_user_paths.py", "tests/test_report.py",
      "tests/test_reliability.py", "tests/test_workflow.py"]
TRD = TR + ["tests/test_distributed.py"]  # the mutants of what each rank does
GR = ["tests/test_graph.py"]
RP = ["tests/test_report.py", "tests/test_user_paths.py", "tests/test_trainer.py"]
RE = ["tests/test_report.py"]  # the report's curve envelope
# sync_bn's BatchNorm against nn.BatchNorm2d in one process and on two gloo ranks (slow: spawns), and the
# refusals and bugs of main_decides on two ranks
DT = "tests/test_distributed.py::test_"
BN = [DT + "sync_batchnorm_in_one_process_is_batchnorm",
      DT + "sync_batchnorm_over_two_ranks_is_batchnorm_of_the_whole_batch"]
DR = [DT + "main_decides_runs_the_work_on_rank_0_alone", DT + "a_run_folder_in_use_refuses_every_rank_with_one_line",
      DT + "a_bug_on_rank_0_is_its_traceback_alone"]
# the evaluation's shares on two gloo ranks against one process (slow: spawns)
ES = ["tests/test_validation.py::test_two_ranks_measure_shares_of_the_inputs_and_give_one_process_figures"]
EV = "engine/evaluate.py"
# evaluate and compare under torchrun, an input measured once when a file breaks mid-evaluation, and the
# refusals every process meets alike (one line)
VT = "tests/test_validation.py::test_"
ONCE = [VT + "a_file_broken_during_an_evaluation_with_skip_bad_is_left_out_and_each_input_measured_once"]
ONCE2 = [VT + "two_ranks_measure_each_input_once_when_a_file_breaks_at_the_end_of_rank_0s_share"]
ALIKE = ["tests/test_sweep.py::test_ranks_that_read_different_weights_or_fail_to_read_refuse_together"]
LINE = [DT + "under_torchrun_a_refusal_every_process_meets_alike_is_one_line"]
# watch_launcher: local rank 0's line and SIGTERM; another local rank's silence, delay and single SIGTERM
WATCH = ["tests/test_stop.py::test_a_process_torchrun_started_gets_a_sigterm_once_torchrun_is_gone",
         "tests/test_stop.py::test_another_local_rank_stops_silently_five_polls_after_torchrun_and_once"]
IM, SA = "engine/images.py", "engine/sample.py"
# sample and interpolate under torchrun: one process's files, byte for byte (slow: torchrun), a file broken since
# the checks, an earlier gallery dropped with the call's first file
ST_ = "tests/test_sample_torchrun.py::test_"
SHARED = [ST_ + "under_torchrun_the_processes_share_the_inputs_and_write_one_processs_files"]
BROKEN = [ST_ + "a_file_broken_since_the_checks_is_left_out_and_the_others_keep_their_places"]
GALLERY = ["tests/test_commands.py::test_a_call_stopped_part_way_leaves_no_earlier_gallery_posing_as_its_own"]
MD = ["tests/test_model.py", "tests/test_graph.py", "tests/test_trainer_loop.py", "tests/test_trainer.py",
      "tests/test_serve.py", "tests/test_reliability.py"]
MT = "tests/test_model.py::test_"
# the shared D outputs: the transcription of the reference's iteration (every variant, BatchNorm's buffers), then
# the step's convolutions per network, phase and kind; a compiled D against the eager step (aot_eager: slow)
SHARE = [MT + "train_step_equals_reference_order", MT + "step_convolutions_per_network_and_phase"]
COMPILED = ["tests/test_compile.py::test_compiled_training_step_equals_eager"] + SHARE
NONFINITE = [MT + "nonfinite_counts_every_networks_nan_and_inf_values",
             "tests/test_reliability.py::test_nonfinite_models_are_refused_by_save_evaluate_and_export"]
# Survivors that no test can kill (docs/mutation-engine.md says why): not counted against the run.
EQUIVALENT = {"T34", "R04", "R23", "WS05", "SD02", "SD17", "NF07"}
# Left out of every run: tests of other commands that train nothing.
SKIP = "not export and not serve_ and not lpips and not interpolate_ and not download"

# (id, file, original text, mutant text, tests)
MUTANTS = [
    ('T01', T, 'max(0, epoch + 1 - niter)',
     'max(0, epoch - niter)', TR),
    ('T02', T, '/ float(niter_decay + 1))',
     '/ float(niter_decay))', TR),
    ('T03', T, 'return max(0.0, 1.0 - max(0, epoch + 1 - niter)',
     'return min(1.0, 1.0 - max(0, epoch + 1 - niter)', TR),
    ('T04', T, 'lr = cfg.lr * lr_factor(self.epoch, cfg.niter',
     'lr = cfg.lr * lr_factor(self.epoch + 1, cfg.niter', TR),
    ('T05', T, '                self.model.set_lr(lr)\n',
     '', TR),
    ('T06', T, 'lr_factor(self.epoch, cfg.niter, cfg.niter_decay)',
     'lr_factor(self.epoch, cfg.niter_decay, cfg.niter)', TR),
    ('T07', T, 'epochs = cfg.niter + cfg.niter_decay',
     'epochs = cfg.niter', TR),
    ('T08', T, '    if total_steps < step:',
     '    if total_steps <= step:', TR),
    ('T09', T, 'if total_steps > epochs * steps_per_epoch:',
     'if total_steps >= epochs * steps_per_epoch:', TR),
    ('T10', T, 'if size[0] % m or size[1] % m]',
     'if size[0] % m or size[0] % m]', TR),
    ('T11', T, 'seed_rng(cfg.seed * 1000 + self.rank, self.device)  # each rank',
     'seed_rng(cfg.seed * 1000, self.device)  # each rank', TRD),
    ('T12', T, '            set_rng_state(self.rng_to_restore, self.device)\n',
     '            pass\n', TR),
    ('T15', T, 'purge_step=self.step + 1 if',
     'purge_step=self.step if', TR),
    ('T16', T, 'if started and resume_path is None:',
     'if started and resume_path is not None:', TR),
    ('T17', C, '"--resume" if epoch is None else f"--epoch {epoch}"',
     '"--resume" if epoch is None else None', TR),
    ('T19', T, '        if epoch is not None:\n            raise ConfigError',
     '        if epoch is None:\n            raise ConfigError', TR),
    ('T20', T, 'if saved is not None and saved != now:',
     'if saved is not None and saved > now:', TR),
    ('T21', T, 'if saved != world:',
     'if saved > world:', TRD),
    ('T22', T, 'self.step, self.epoch = state["step"], state["epoch"]',
     'self.step, self.epoch = state["step"], state["step"] // self.steps_per_epoch - 1', TR),
    ('T23', T, '        self.saved_step, self.saved_path = self.step, self.resume_path\n',
     '', TR),
    ('T24', T, '        if self.rank > 0:\n',
     '        if self.rank >= 0:\n', TR),
    ('T25', T, 'interval = (state.get("log_interval") if self.rank == 0 else',
     'interval = (state.get("log_interval") if self.rank != 0 else', TRD),
    ('T26', T, '            self.log_count = interval["count"]\n',
     '            self.log_count = len(interval["sums"])\n', TR),
    ('T27', T, '            self.dist.main_decides(self._truncate_log)\n',
     '            pass\n', TR),
    ('T28', T, 'if grid_step(grid) > self.step:',
     'if grid_step(grid) >= self.step:', TR),
    ('T29', T, '            elif at > step:',
     '            elif at >= step:', TR),
    ('T30', T, '        return math.inf\n',
     '        return 0\n', TR),
    ('T31', T, 'rank_rng"] = [rng for rng, _ in states[1:]]',
     'rank_rng"] = [rng for rng, _ in states[:-1]]', TRD),
    ('T33', T, 'fresh_d = cfg.fresh_D or (imported is not None and not {"D", "D2"} & set(imported))',
     'fresh_d = cfg.fresh_D or imported is not None', TR),
    ('T34', T, 'if (run_dir / "log.jsonl").exists():',
     'if (run_dir / "config.json").exists():', TR),
    ('T35', T, 'for p in ("val", "test")',
     'for p in ("test", "val")', TR),
    ('T37', T, 'if not rows or batch["A"].shape == rows[0]["A"].shape:',
     'if True:', TR),
    ('T38', T, '                self.tb.log_grid(self.step, path)',
     '                self.tb.log_grid(self.step - 1, path)', TR),
    ('T39', T, '        if self.saved_step is None:\n            return "no checkpoint',
     '        if self.saved_step is not None:\n            return "no checkpoint', TR),
    ('T40', T, 'if path is None or self.saved_step != self.step:',
     'if path is None:', TR),
    ('T41', T, 'epoch=self.epoch if epoch is None else epoch, own=extra)',
     'epoch=self.epoch, own=extra)', TR),
    ('T42', T, 'interval = {"count": self.log_count,',
     'interval = {"count": 0,', TR),
    ('T44', T, 'row = {"step": self.step, "epoch": self.epoch, "lr": lr,',
     'row = {"step": self.step, "epoch": self.epoch + 1, "lr": lr,', TR),
    ('T45', T, 'nets = {} if bad or starved else self.model.nonfinite()',
     'nets = {}', TR),
    ('T46', T, '            self.write_report()  # the page says so',
     '            pass  # the page says so', TR),
    ('T47', T, 'self.log_sums[k] = self.log_sums.get(k, 0) + v',
     'self.log_sums[k] = v', TRD),
    ('T48', T, 'if self.step % cfg.log_every == 0 or self.step == self.total_steps:',
     'if self.step % cfg.log_every == 0:', TR),
    ('T49', T, 'return (self.step - step_last) * cfg.batch_size * self.world / max(now - t_last - aside, 1e-9)',
     'return (self.step - step_last) * self.world / max(now - t_last - aside, 1e-9)', TR),
    ('T51', T, "                        if self.step % cfg.log_every == 0:  # a run's",
     "                        if True:  # a run's", TR),
    ('T53', T, 'log = open(self.run_dir / "log.jsonl", "a")',
     'log = open(self.run_dir / "log.jsonl", "w")', TR),
    ('T54', T, '{k: v / (kept * world) for k, v in zip(names, values)}',
     '{k: v / kept for k, v in zip(names, values)}', TRD),
    ('T55', T, 'self.loader.set_epoch(self.epoch, self.step - self.epoch * self.steps_per_epoch)',
     'self.loader.set_epoch(self.epoch, 0)', TR),
    ('T56', T, '                    if self.step % cfg.sample_every == 0:\n',
     '                    if (self.step + 1) % cfg.sample_every == 0:\n', TR),
    ('T57', T, '                    if self.step % cfg.save_every == 0:\n                        self.save()\n',
     '', TR),
    ('T58', T, 'kept = self.step and not rest and self.cfg.save_epoch_freq and done % self.cfg.save_epoch_freq == 0',
     'kept = self.step and not rest and self.cfg.save_epoch_freq', TR),
    ('T59', T, 'self.save(self.run_dir / "checkpoints" / epoch_name(done), epoch=done)',
     'self.save(self.run_dir / "checkpoints" / epoch_name(self.epoch), epoch=done)', TR),
    ('T60', T, 'if self.step >= self.total_steps or stop is not None:\n                        break',
     'if self.step > self.total_steps or stop is not None:\n                        break', TR),
    ('T61', T, '                else:\n                    self.epoch += 1\n',
     '                self.epoch += 1\n', TR),
    ('T62', T, "or skipped is not None:\n                self.save()\n",
     "or skipped is not None:\n                pass\n", TR),
    ('T63', T, '            elif self.step % cfg.sample_every:  # else',
     '            elif not self.step % cfg.sample_every:  # else', TR),
    ('G01', G, '+ [model.ema_steps]',
     '', GR),
    ('G02', G, 'for t in (*net.parameters(), *net.buffers())]',
     'for t in net.parameters()]', GR),
    ('G03', G, '            else:\n                t.zero_()\n',
     '', GR),
    ('G04', G, '    torch.set_rng_state(rng[0])\n',
     '', GR),
    ('G05', G, '*([model.G_ema] if model.G_ema is not None else [])',
     '', GR),
    ('G08', G, 'if batch[k].shape != buf.shape:',
     'if batch[k].shape[0] != buf.shape[0]:', GR),
    ('G10', G, 'return {k: v.clone() for k, v in self.losses.items()}',
     'return self.losses', GR),
    ('R01', R, 'if f.read(len(self.tail)) != self.tail:',
     'if False:', RP),
    ('R02', R, 'end = text.rfind(b"\\n") + 1',
     'end = len(text)', RP),
    ('R03', R, 'self.offset += end',
     'self.offset = end', RP),
    ('R04', R, 'if row.get("diverged") and not self.diverged:',
     'if row.get("diverged"):', RP),
    ('R05', R, '                        not_finite.pop(k, None)\n',
     '                        pass\n', RP),
    ('R06', R, 'm[4], m[5] = b[4], b[5]',
     'm[4], m[5] = m[4], m[5]', RP),
    ('R08b', R, '    if whole:\n        step = max(step, 1)',
     '    if False:\n        step = max(step, 1)', RP),
    ('R09', R, 'while (len(items) - 2) // stride + 1 > k - 1:',
     'while (len(items) - 2) // stride + 1 >= k - 1:', RP),
    ('R10', R, 'return items[:-1][::stride] + [items[-1]]',
     'return items[::stride]', RP),
    ('R11', R, 'm = re.fullmatch(r"step_(\\d+)", Path(path).stem)',
     'm = re.match(r"step_(\\d+)", Path(path).stem)', RP),
    ('R12', R, 'for key in [k for k in cache if isinstance(k, tuple) and k not in keep]:',
     'for key in [k for k in cache if isinstance(k, tuple) and k in keep]:', RP),
    ('R13', R, 'status = {**{"step": last.get("step"), "epoch": last.get("epoch")}, **(status or {})}',
     'status = {**(status or {}), **{"step": last.get("step"), "epoch": last.get("epoch")}}', RP),
    ('R14', R, 'return f"train/{key}" if key in NOT_LOSSES else f"loss/{key}"',
     'return f"train/{key}" if key in NOT_LOSSES and key != "img_per_s" else f"loss/{key}"', RP),
    ('R15', R, 'and k not in EVAL_SETTINGS:',
     'and k in EVAL_SETTINGS:', RP),
    ('R18', R, 'if k in NOT_CHARTED or not isinstance(v, (int, float)) or isinstance(v, bool):',
     'if k in ("step", "diverged") or not isinstance(v, (int, float)) or isinstance(v, bool):', RP),
    ('M01', M, '                else:\n                    group["lr"] = lr\n',
     '                else:\n                    pass\n', MD),
    ('M02', M, 'w = (2.0 / (self.ema_steps + 1)).clamp_(min=1.0 - self.cfg.ema)',
     'w = (2.0 / (self.ema_steps + 1)).clamp_(min=self.cfg.ema)', MD),
    ('M03', M, '        self.ema_steps.add_(1)\n',
     '', MD),
    ('M04', M, '            state["ema"] = self.G_ema.state_dict()\n',
     '', MD),
    ('M05', M, '            self.ema_steps.fill_(state.get("ema_steps", 10**9 if state.get("ema") else 0))',
     '            self.ema_steps.fill_(0)', MD),
    ('M06', M, 'self.G_ema.load_state_dict(state.get("ema") or state["nets"]["G"])',
     'self.G_ema.load_state_dict(state["nets"]["G"])', MD),
    ('M08', M, '        if self.G_ema is not None:\n            self._update_ema()\n',
     '', MD),
    ('R19', R, 'if len(self.buckets) > MAX_BUCKETS:',
     'if len(self.buckets) >= MAX_BUCKETS:', RE),
    ('R20', R, 'if y < b[1]:',
     'if y <= b[1]:', RE),
    ('R21', R, 'if y > b[3]:',
     'if y >= b[3]:', RE),
    ('R22', R, '        b[4], b[5] = x, y\n',
     '', RE),
    ('R23', R, 'for k in sorted(self.buckets):  # step order',
     'for k in self.buckets:  # step order', RE),
    ('R24', R, 'if b[1] < m[1]:',
     'if b[1] <= m[1]:', RE),
    ('R25', R, 'if b[3] > m[3]:',
     'if b[3] < m[3]:', RE),
    ('R26', R, 'm[0], m[1] = b[0], b[1]',
     'm[1] = b[1]', RE),
    ('R27', R, 'm[2], m[3] = b[2], b[3]',
     'm[3] = b[3]', RE),
    ('R28', R, 'pts += sorted({(lo_x, lo_y), (hi_x, hi_y)})',
     'pts += [(lo_x, lo_y), (hi_x, hi_y)]', RE),
    ('R29', R, 'if last not in pts[-2:]:',
     'if True:', RE),
    ('R30', R, 'last = tuple(self.buckets[max(self.buckets)][4:])',
     'last = tuple(self.buckets[max(self.buckets)][2:4])', RE),
    ('R31', R, 'self.width *= 2',
     'self.width *= 4', RE),
    ('B01', N, 'count = xs.new_full((x.shape[1],), x.numel() // x.shape[1])',
     'count = xs.new_full((x.shape[1],), x.shape[0] * x.shape[2])', BN),
    ('B02', N, 'sums = _SumOverRanks.apply(torch.stack(',
     'sums = (torch.stack(', BN),
    ('B03', N, '        dist.all_reduce(grad)\n',
     '', BN),
    ('B04', N, 'var = (sums[1] / n - d_mean.square()).clamp_min(0)',
     'var = (sums[1] / n).clamp_min(0)', BN),
    ('B05', N, '(var * (n / (n - 1).clamp_min(1)))',
     '(var * (n / n))', BN),
    ('B06', N, 'if self.momentum is None else self.momentum',
     'if self.momentum is None else 1 - self.momentum', BN),
    ('B07', N, '(1.0 / self.num_batches_tracked)',
     '(1.0 / (self.num_batches_tracked + 1))', BN),
    ('B08', N, '                self.num_batches_tracked.add_(1)\n',
     '', BN),
    ('B09', N, 'self.running_mean.lerp_((shift + d_mean)',
     'self.running_mean.lerp_((d_mean)', BN),
    ('B10', N, 'torch.rsqrt(var + self.eps)',
     'torch.rsqrt(var)', BN),
    ('B11', N, 'acc = torch.promote_types(x.dtype, torch.float32)',
     'acc = x.dtype', BN),
    ('B12', N, 'if not (self.training and dist.is_available()',
     'if not (dist.is_available()', BN),
    ('B13', N, 'return y.to(x.dtype)',
     'return y', BN),
    ('B14', N, 'xs = x.to(acc) - shift[:, None, None]',
     'xs = x.to(acc)', BN),
    ('B15', N, 'SyncBatchNorm2d(child.num_features, child.eps, child.momentum',
     'SyncBatchNorm2d(child.num_features, 1e-5, child.momentum', BN),
    ('B16', N, '            sync_batchnorm(child)\n',
     '            pass\n', BN + [DT + "sync_bn_trains_two_ranks_as_one_process_at_twice_the_batch"]),
    ('D01', RT, '        if self.main:\n            try:',
     '        if True:\n            try:', DR),
    ('D02', RT, 'told[0].from_rank0 = True',
     'pass', DR),
    ('D03', RT, 'if not self.main and told[0] is not None:',
     'if told[0] is not None:', DR),
    ('D04', RT, 'if error is None or isinstance(error, USER_ERRORS):',
     'if error is None:', DR),
    ('D05', RT, '                raise told[0]\n        if error is not None:\n            raise error\n',
     '                raise told[0]\n', DR),
    ('D06', CLI, '        if getattr(e, "from_rank0", False):  # a bug of rank 0',
     '        if False:  # a bug of rank 0', DR),
    ('D07', CLI, 'if not getattr(e, "from_rank0", False) and not _said_on_this_machine():',
     'if not _said_on_this_machine():', DR),
    ('ES1', EV, 'seed)[share.start:share.stop]',
     'seed)', ES),
    ('ES2', EV, '_from_input(loader, share.start)',
     '_from_input(loader, 0)', ES),
    ('ES3', EV, 'return range(lo, hi), rounds + (self.dist.world > 1)',
     'return range(lo, hi), rounds', ES),
    ('ES4', RT, 'told[first].from_rank0 = True',
     'pass', ES),
    ('ES5', EV, 'in share and i not in measured:',
     'in share:', ONCE),
    ('ES6', EV, 'z = z_all[[index[p] - share.start for p in take["paths"]]]',
     'z = z_all[:len(rows)]', ONCE),
    ('ES7', EV, 'if (i := index.get(path, -1)) in share and',
     'if (i := index.get(path, -1)) >= 0 and', ONCE2),
    ('ES8', RT, 'if len(set(read)) > 1:',
     'if False:', ALIKE),
    ('ES9', RT, 'group.each_decides(lambda: made.append(make()))',
     'made.append(make())', ALIKE),
    ('ES10', CLI, 'if _under_torchrun() and args.command not in DISTRIBUTED:',
     'if False:', LINE),
    ('ES11', CLI, '!= "0" and not grouped',
     '!= "0"', [DT + "a_data_error_on_one_rank_mid_training_is_one_line_from_each_rank"]),
    ('ES12', "pipelines/base.py", 'fewer samples than ranks")),\n                rank)',
     'fewer samples than ranks")),\n                0)',
     ["tests/test_pipelines_errors.py::test_too_few_files_for_a_batch"]),
    ('ES13', RT, 'if int(here or local_rank + 1) > gpus:',
     'if local_rank + 1 > gpus:', [DT + "under_torchrun_a_named_gpu_is_this_ranks_gpu"]),
    ('ES14', "engine/compare.py", 'dist.each_decides(load)',
     'load()', LINE),
    ('ES15', RT, '        _DATA_LOG.addFilter(_said_by_local_rank_0)  # (until close())',
     '        pass', [DT + "the_data_warnings_every_process_gives_alike_are_said_by_local_rank_0"]),
    # watch_launcher: a process torchrun started stops as on a SIGTERM once torchrun is gone
    ('WL01', RT, 'if _watched_parent is not None or "TORCHELASTIC_RUN_ID" not in os.environ:',
     'if "TORCHELASTIC_RUN_ID" not in os.environ:', WATCH),
    ('WL02', RT, 'if _watched_parent is not None or "TORCHELASTIC_RUN_ID" not in os.environ:',
     'if _watched_parent is not None:', WATCH),
    ('WL03', RT, 'while os.getppid() == parent:',
     'while os.getppid() != parent:', WATCH),
    ('WL04', RT, 'if os.environ.get("LOCAL_RANK", "0") != "0":',
     'if False:', WATCH),
    ('WL05', RT, '            time.sleep(5 * poll)\n',
     '            pass\n', WATCH),
    ('WL06', RT, '        os.kill(os.getpid(), signal.SIGTERM)\n',
     '        pass\n', WATCH),
    ('WL07', RT, 'if os.environ.get("LOCAL_RANK", "0") != "0":',
     'if os.environ.get("LOCAL_RANK", "1") != "0":', WATCH),
    ('WL08', RT, 'if os.environ.get("LOCAL_RANK", "0") != "0":',
     'if os.environ.get("LOCAL_RANK", "0") == "0":', WATCH),
    # write_shares: sample's and interpolate's inputs shared among torchrun's processes (sample's own lines too)
    ('WS01', IM, 'for r in range(max(sizes)):',
     'for r in range(min(sizes)):', SHARED),
    ('WS02', IM, 'if i < hi:',
     'if i <= hi:', SHARED),
    ('WS03', IM, 'if made and made[0] is not None:',
     'if made:', BROKEN),
    ('WS04', IM, 'if r == 0 and first is not None:',
     'if r == 1 and first is not None:', GALLERY),
    ('WS05', IM, 'if r == 0 and first is not None:',
     'if first is not None:', GALLERY + SHARED),
    ('WS06', IM, 'count_line(label, sum(min(r + 1, n) for n in sizes), total)',
     'count_line(label, (r + 1) * dist.world, total)', SHARED),
    ('WS07', IM, 'if label and dist.main:\n            count_line',
     'if label:\n            count_line', SHARED),
    ('WS08', IM, 'return [w for share in shares for w in share] if dist.main',
     'return [w for share in reversed(shares) for w in share] if dist.main', SHARED),
    ('WS09', SA, 'if path != loader.samples[i].path:',
     'if False:', BROKEN),
    ('WS10', SA, 'loader.set_epoch(0, i)',
     'loader.set_epoch(0, 0)', SHARED),
    # interpolate's --num_test, the spelling torchrun's parser lets through (here: mutation_commands leaves out
    # the tests named for torchrun)
    ('IN01', CLI, 'p.add_argument("--num", "--num_test", dest="num", type=_at_least(1), default=5,',
     'p.add_argument("--num", dest="num", type=_at_least(1), default=5,',
     [DT + "every_option_of_the_shared_commands_passes_through_torchrun"]),
    # D's outputs on each fake kept from the G phase for the D phase (_d_on_fake, _InputGradOnly): the values
    # against the reference's transcription (BatchNorm's running statistics included), the compute by the
    # step's convolutions counted per network and phase (a second forward of D on a fake is the same values)
    ('SD01', M, 'if self.cfg.compile != "off" or any(True for _ in D.buffers()):',
     'if self.cfg.compile != "off":', SHARE),
    ('SD02', M, 'if self.cfg.compile != "off" or any(True for _ in D.buffers()):',
     'if any(True for _ in D.buffers()):', COMPILED),
    ('SD03', M, 'if self.cfg.compile != "off" or any(True for _ in D.buffers()):',
     'if self.cfg.compile == "off" or any(True for _ in D.buffers()):', SHARE),
    ('SD04', M, 'if self.cfg.compile != "off" or any(True for _ in D.buffers()):',
     'if self.cfg.compile != "off" or any(True for _ in D.parameters()):', SHARE),
    ('SD05', M, '        leaf = x.detach().requires_grad_()\n',
     '        leaf = x.detach()\n', SHARE),
    ('SD06', M, '        out[key] = D(leaf)\n',
     '        out[key] = D(x)\n', SHARE),
    ('SD07', M, 'return list(_InputGradOnly.apply(x, (leaf, out[key])))',
     'return list(_InputGradOnly.apply(x.detach(), (leaf, out[key])))', SHARE),
    ('SD08', M, 'return list(_InputGradOnly.apply(x, (leaf, out[key])))',
     'return list(out[key])', SHARE),
    ('SD09', M, '        return gx, None\n',
     '        return 0.5 * gx, None\n', SHARE),
    ('SD10', M, 'grads, retain_graph=True)',
     'grads, retain_graph=False)', SHARE),
    ('SD11', M, 'return tuple(p.clone() for p in ctx.preds)',
     'return tuple(ctx.preds)', SHARE),
    ('SD12', M, 'self._d_on_fake(self.D, A1, fake_enc, "D_fake_enc", out)',
     'self._d_on_fake(self.D, A1, fake_enc, "D_fake_rand", out)', SHARE),
    ('SD13', M, 'self._d_on_fake(D, A1, fake_rand, "D_fake_rand", out)',
     'self._d_on_fake(D, A1, fake_rand, "D_fake_enc", out)', SHARE),
    ('SD14', M, 'self._d_on_fake(D, A1, fake_rand, "D_fake_rand", out)',
     'self._d_on_fake(self.D, A1, fake_rand, "D_fake_rand", out)', SHARE),
    ('SD15', M, '        x = self._d_input(A1, fake)\n',
     '        x = fake\n', SHARE),
    ('SD16', M, 'fake = out.get(f"D_{branch}") or D(self._d_input(A1, out[branch].detach()))',
     'fake = D(self._d_input(A1, out[branch].detach()))', SHARE),
    ('SD17', M, 'fake = out.get(f"D_{branch}") or D(self._d_input(A1, out[branch].detach()))',
     'fake = out.get(f"D_{branch}") or D(self._d_input(A1, out[branch]))', SHARE),
    ('SD18', M, 'fake = out.get(f"D_{branch}") or D(self._d_input(A1, out[branch].detach()))',
     'fake = out.get(f"D_{branch}") or D(self._d_input(A_real, out[branch].detach()))', SHARE),
    ('SD19', M, 'L["D2"] = d_loss(self._rand_D(), "fake_rand", A2, B2)',
     'L["D2"] = d_loss(self._rand_D(), "fake_enc", A2, B2)', SHARE),
    ('SD20', M, '.backward(\n                inputs=[p for n in dis_nets for p in opts[n].param_groups[0]["params"]])',
     '.backward()', SHARE),
    ('SD21', M, 'inputs=[p for n in dis_nets for p in opts[n].param_groups[0]["params"]])',
     'inputs=[p for n in dis_nets[:1] for p in opts[n].param_groups[0]["params"]])', SHARE),
    # nonfinite: every network's count of NaN/inf values read back at once
    ('NF01', M, 'counts.append(torch.stack([(~torch.isfinite(t)).sum() for t in tensors]).sum())',
     'counts.append(torch.stack([torch.isnan(t).sum() for t in tensors]).sum())', NONFINITE),
    ('NF02', M, 'counts.append(torch.stack([(~torch.isfinite(t)).sum() for t in tensors]).sum())',
     'counts.append(torch.stack([(~torch.isfinite(t)).sum() for t in tensors]).max())', NONFINITE),
    ('NF03', M, 'counts.append(torch.stack([(~torch.isfinite(t)).sum() for t in tensors]).sum())',
     'counts[:] = [torch.stack([(~torch.isfinite(t)).sum() for t in tensors]).sum()]', NONFINITE),
    ('NF04', M, 'torch.stack(counts).tolist() if counts else []) if c}',
     'torch.stack(counts).tolist() if counts else [])}', NONFINITE),
    ('NF05', M, 'groups = {name: [*net.parameters(), *net.buffers()] for name, net in nets.items()}',
     'groups = {name: [*net.parameters()] for name, net in nets.items()}', NONFINITE),
    ('NF06', M, '                names.append(name)\n',
     '                names.insert(0, name)\n', NONFINITE),
    ('NF07', M, 'torch.stack(counts).tolist() if counts else []) if c}',
     'torch.stack(counts).tolist()) if c}', NONFINITE),
]


def run(ids: list[str], mutants=None, equivalent=None, skip=None, name: str = "mutation-loop") -> int:
    """Run the mutants named by `ids` (all when empty) of `mutants` (default this file's MUTANTS, with
    its EQUIVALENT and SKIP); results to build/<name>/results.jsonl. tools/mutation_commands.py,
    mutation_metrics.py and mutation_compare.py run their own lists through this."""
    mutants = MUTANTS if mutants is None else mutants
    equivalent = EQUIVALENT if equivalent is None else equivalent
    skip = SKIP if skip is None else skip
    if unknown := sorted(set(ids) - {m[0] for m in mutants}):
        sys.exit(f"no such mutant: {', '.join(unknown)}")  # a typo ran nothing and exited 0
    chosen = [m for m in mutants if not ids or m[0] in ids]
    files = sorted({m[1] for m in chosen})
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *files], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout
    if dirty:
        sys.exit(f"uncommitted changes in {', '.join(files)}: commit or stash them first\n{dirty}")
    out = ROOT / "build" / name / "results.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    failed_run = 0  # survivors, and mutants that could not be judged
    # A kill (SIGTERM, a closed terminal) must restore the sources as an error does: as an exception,
    # `finally` runs (the default action ends the process with a mutant left in the file).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda num, frame: sys.exit(f"stopped by signal {num}; sources restored"))
    try:
        for mid, rel, old, new, tests in chosen:
            path = ROOT / rel
            src = path.read_text()
            if src.count(old) != 1:
                row = {"id": mid, "result": f"no longer matches ({src.count(old)} places)"}
                failed_run += 1  # not judged: the run does not pass
            else:
                path.write_text(src.replace(old, new))
                t0 = time.time()
                # A mutant that loops forever is caught by the time it takes (the runner hung on one), its whole
                # process group ended: the processes pytest started (spawned ranks) outlived pytest alone.
                proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k",
                                         skip, *tests], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, start_new_session=True)
                try:
                    stdout, _ = proc.communicate(timeout=MUTANT_TIMEOUT)
                    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout=stdout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                    done = subprocess.CompletedProcess(proc.args, 1, stdout=f"FAILED (over {MUTANT_TIMEOUT} s)")
                subprocess.run(["git", "checkout", "--", rel], cwd=ROOT, check=True)
                failed = [ln for ln in done.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
                result = {0: "survived", 1: "killed"}.get(done.returncode, f"pytest exit {done.returncode}")
                if result == "survived" and mid in equivalent:
                    result = "survived (equivalent)"
                failed_run += result == "survived" or result.startswith("pytest exit")
                row = {"id": mid, "result": result, "seconds": round(time.time() - t0), "by": failed[:1]}
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
    finally:
        subprocess.run(["git", "checkout", "--", *files], cwd=ROOT, check=True)
    return 1 if failed_run else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
