"""Hand-written mutants of the lines this session's bug fixes wrote outside the kernels (those are
the KF mutants in tools/mutation_kernels.py) and the evaluation's shares (ES1-ES4, tools/mutation_loop.py):
config rules, use_same_D, import-official's message, check_writable, write_report's refusal,
download's by-hand advice, load_checkpoint's eval mode and GPU generator, the trainer's copy to
latest.pt, main_decides around its writes, latest.pt written once, the owed evaluation's stop, the
mid-run data error, DALI's size checks, the missing split's message and a held-out split without B.
Each is another plausible mistake in a fixed line than its revert where there is one: an operand,
a condition inverted or dropped, the wrong tensor or path. Results: docs/mutation-engine.md, "The
session's fixes".

A later session's fixes (6621da3..ea00c07) follow the same way: interpolate's refusals of options that
make no code and each rank's share of its inputs (IP, IS), a --phase outside the dataset folder (PH), a
size the preprocess does not use (LS), interpolate's options without a default (CL), compare's and the
sweep's encoded notes (EN). Results: docs/mutation-engine.md, "D's shared outputs, the weights' check,
interpolate's refusals and shares".

The train command's review (CL03-CL16): a --load_size its preprocess does not use refused as sample
refuses it, the dry run's checks of the run folder and the checkpoint (check_start), the crop's wording.
Results: docs/mutation-engine.md, "The train command's review".

The Python API's audit (PA01-PA26): the moving average in the model's state_dict, generate's and encode's
inputs, the model's own copy of its config, a run folder read or resumed, and the arguments of evaluate,
compare, export and make_loader. Results: docs/mutation-engine.md, "The Python API's audit".

The files' order (PO01-PO02): aligned and single files in the reference's order, full paths sorted with
their extensions. Results: docs/mutation-engine.md, "The files' order".

The inference commands' loaders closed (LC01-LC04): sample's, interpolate's and Evaluation's, however the
call ends; LC05: a run without latest.pt names the epoch's file. Results: docs/mutation-engine.md, "The
inference commands' loaders closed".

Nothing litters (NL01-NL28): check_writable judges a destination without making it, a refused training
start or export removes the folders it made, the download makes its folder at its first write (NL01-NL08);
the suite's check (tests/conftest.py) that its tests leave nothing in the folder it runs in (NL09-NL13);
atomic_write's temp files named by their writer, another live writer's left alone (NL14-NL19);
write_report refuses a folder that is no run's (NL20-NL21, NL28); an Evaluation builds its loader once (NL22-NL27).
Results: docs/mutation-engine.md, "Nothing litters".

A refused start changes nothing (RR01-RR08): a resume's writes to its run folder after every check of the
start, the evaluations as the resume keeps them judged before, a refused new run's --out removed with the
folders above it the start made. Results: docs/mutation-engine.md, "A refused start changes nothing".
The command line's advice as a Python caller spells it (PY01-PY06). Results: docs/mutation-engine.md, "The
command line's advice as a Python caller spells it".

Under torchrun (TD01-TD05): a start refused by the other ranks' evaluations changes nothing in its run folder, a
valid resume's writes are rank 0's, train --dry-run's config is printed once. Results: docs/mutation-engine.md,
"Under torchrun: refused starts and the dry run".

Users' own data at its edges, and the gloo group's ending (DE01-DE39): files that are not regular, names that
are not UTF-8 (DALI, the galleries), what the walk leaves out said, torch 2.5's gloo ending, fuse_norm_act's
double_backward, --no-skip_bad, A/ and B/ paired by NFC names; from a second pass over
runs, resumes and the commands after training (DE17-DE39). Results: docs/mutation-engine.md, "Users' own
data at its edges, and the gloo group's ending". Session 36's user passes (US01-US57): docs/mutation-engine.md,
"Hang-ups, divergences between log intervals, and options that change nothing". Session 37's passes (the
authors' workflow, the paper's evaluation, a hostile machine, the CPU's profile, a review; AW01-AW41):
docs/mutation-engine.md, "The authors' workflow, the evaluation's protocol and a hostile machine". Session 38's
(serve, torchrun, large data, the design documents, reproducibility, upgrades, the Python API, the commands'
speed; SQ01-SQ55): docs/mutation-engine.md, "Jobs a scheduler restarts, the explorer under load, launches and
data that cannot be read". Session 39's (the GPU-only code, exports used elsewhere, the pages, a security
review, the paper's comparison, every option at its edges; HS02-HS58): docs/mutation-engine.md, "Pages that keep what
they said, files that are not the tool's, and every option at its edges".

Session 52's review of a stopped sample's resume (SR01-SR40), io.file_sha256 (FS01-FS03), TempFiles.remove_stale
(RS01-RS06) and check_fallback_mode (FM01-FM08): docs/mutation-engine.md, "Resumed samples, file digests, stale temp
files and the fallback mode's check".

Session 53's changes (DD01-DD32, DM01-DM11, PG01-PG02, SV01-SV04, LN01-LN05, KM01-KM07): DALI's draws from each
sample's generator and its pass from a batch, download model's file already there, an --out holding a page of no
run, serve's SIGINT handler, LOCAL_RANK beside a caller's group, kept measures of another kind: docs/mutation-engine.md,
"DALI's draws, a model already there, a page in --out, serve's handler, LOCAL_RANK and kept files of another kind".

Session 54's changes (DS01-DS38, EK01-EK37): DALI's reads past its list's end, its pipelines let go and rebuilt, files
read again; evaluate's and compare's kept measures at every end: docs/mutation-engine.md, "DALI's reads past its
list's end, kept measures at every end".

Session 55's changes (MQ01-MQ47): compare's kept measures by their weights' digest, each rank's lost measures in rank
0's line (Dist.agree_each), the sweep's line after an error and its page's folder refused, TensorBoardLog opened at
its first use: docs/mutation-engine.md, "Kept measures by digest, each rank's losses, the sweep's folder, a lazy event
file".

Run with tools/mutation_loop.py's runner (how it mutates, restores and reports: its docstring):

    .venv/bin/python tools/mutation_fixes.py            # every mutant (about an hour on 2 cores; a median of 4 s each)
    .venv/bin/python tools/mutation_fixes.py CF01 TR03  # some of them; build/mutation-fixes/results.jsonl
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_loop import run  # noqa: E402

CFG, M, OF, IO, R = "engine/config.py", "engine/model.py", "engine/official.py", "engine/io.py", "engine/report.py"
DL, CK, T, EV = "engine/download.py", "engine/checkpoint.py", "engine/trainer.py", "engine/evaluate.py"
DA, FI = "pipelines/dali_loader.py", "pipelines/files.py"
IP, RT, SP, CLI = "engine/interpolate.py", "engine/runtime.py", "pipelines/spec.py", "engine/cli.py"
IM = "engine/images.py"
CONFIG = ["tests/test_config.py"]
ORDER = ["tests/test_pipelines_errors.py::test_files_come_in_the_references_order_extension_included"]
SAME_D = ["tests/test_model.py::test_train_step_equals_reference_order"]
PARTING = ["tests/test_official.py::test_a_file_with_a_tensor_missing_or_extra_names_where_it_parts_from_ours"]
REL = "tests/test_reliability.py::test_"
WRITABLE = [REL + "io_destinations_under_a_file_are_refused",
            REL + "io_writes_create_folders_and_get_the_usual_permissions"]
REPORT = ["tests/test_report.py::test_report_of_no_run_folder_is_refused_by_name"]
BY_HAND = ["tests/test_download.py::test_no_network_says_what_to_fetch_by_hand_and_where_it_goes"]
EVAL_MODE = [REL + "a_model_loaded_for_inference_is_in_eval_mode"]
GPU_RNG = [REL + "the_training_gpus_generator_comes_back_on_the_gpu_the_run_resumes_on"]
LOOP = "tests/test_trainer_loop.py::test_"
GONE_BACK = [LOOP + "going_back_to_an_earlier_checkpoint_makes_it_the_runs_latest"]
CADENCE = [LOOP + "samples_and_checkpoints_come_at_their_steps",
           LOOP + "a_run_ending_on_an_epoch_checkpoint_writes_latest_pt_too"]
FULL = "tests/test_distributed.py::test_a_full_disk_on_rank_0_during_training_stops_every_rank_with_one_line"
FULL_CKPT, FULL_GRID, FULL_LOG = ([f"{FULL}[{case}]"] for case in (
    "latest.pt-CheckpointError: cannot write checkpoint", "latest.png-OutputError: cannot write sample grid",
    "log.jsonl-OutputError: cannot write the training log"))
OWED = ["tests/test_validation.py::test_a_stop_during_the_owed_evaluation_at_a_resume_trains_no_step"]
BROKEN = [REL + "data_broken_mid_run_names_the_step_and_the_checkpoint_to_resume"]
DALI = ["tests/test_pipelines_errors.py::test_dali_names_a_file_replaced_by_another_size_after_the_checks",
        "tests/test_pipelines_errors.py::test_dali_names_a_b_file_replaced_by_another_size_after_the_checks",
        "tests/test_pipelines_errors.py::test_dali_names_an_input_replaced_by_another_size_after_the_checks"]
SPLITS = ["tests/test_own_data.py::test_inference_on_a_dataset_of_a_training_split_alone_names_the_split_to_choose",
          "tests/test_pipelines_errors.py::test_a_missing_split_beside_others_is_named_even_with_an_image_at_the_root",
          "tests/test_pipelines_errors.py::test_a_split_that_is_there_in_another_layout_is_not_called_missing_"
          "beside_the_splits"]
NO_B = ["tests/test_own_data.py"]
INT = ["tests/test_interpolate.py"]  # (the whole file: 26 tests, 11-13 s)
LAYER_IMPL = ["tests/test_model.py::test_layer_impl_keeps_the_kernels_where_launches_are_captured_or_compiled",
              "tests/test_model.py::test_every_layer_is_built_with_layer_impls_choice_and_the_config_keeps_auto"]
IMPL_NOTE = ["tests/test_user_paths.py::test_training_says_when_impl_auto_runs_torchs_layers"]
NZ_TRAIN = [REL + "train_refuses_eval_samples_given_for_a_model_without_z_before_the_run_folder",
            "tests/test_user_paths.py::test_counts_of_one_read_as_one"]
NZ_EVAL = ["tests/test_commands.py::test_n_samples_for_a_model_without_z_is_refused_before_any_evaluation_is_built"]
PHASE = ["tests/test_user_paths.py::test_a_phase_that_is_not_a_split_of_the_dataset_is_refused"]
# the user-path audit of 2026-12-04: outputs that replaced checkpoints or datasets, a set-aside checkpoint
# continued, keep_best gone back to a best step
EX, SW, DM = "engine/export.py", "engine/sweep.py", "pipelines/demo.py"
OVER_EXPORT = ["tests/test_export.py::test_an_out_that_is_a_checkpoint_is_refused_and_left_as_it_was"]
OVER_JSON = ["tests/test_sweep.py::test_a_json_that_is_a_checkpoint_is_refused_and_left_as_it_was"]
OVER_IMPORT = ["tests/test_trainer.py::test_import_official_replaces_an_import_but_not_a_trained_checkpoint"]
DEMO_INTO = ["tests/test_demo.py::test_make_demo_into_a_dataset_of_other_images_is_refused_and_leaves_it_alone",
             "tests/test_demo.py::test_a_make_demo_interrupted_mid_split_is_run_again"]
SET_ASIDE = ["tests/test_user_paths.py::test_a_checkpoint_set_aside_by_a_resume_going_back_continues_into_a_new_folder"]
BACK_BEST = ["tests/test_validation.py::test_going_back_to_the_step_of_a_best_evaluation_keeps_it_best",
             "tests/test_validation.py::test_a_resume_drops_later_evaluations_and_a_later_best_pt"]
SIZES = ["tests/test_interpolate.py::test_a_size_the_preprocess_does_not_use_is_refused"]
TRAIN_SIZES = ["tests/test_user_paths.py::test_train_refuses_a_load_size_its_preprocess_does_not_use_as_sample_does"]
CROP_WORDS = ["tests/test_preprocessing_spec.py::test_crop_larger_than_the_image_in_one_dimension",
              "tests/test_preprocessing_spec.py::test_a_crop_larger_than_the_image_scaled_to_width_says_the_scaled_size"]
DRY = ["tests/test_user_paths.py::test_a_dry_run_refuses_the_resumes_the_run_refuses_with_its_words",
       "tests/test_user_paths.py::test_a_dry_run_of_a_valid_resume_prints_the_runs_config_and_writes_nothing"]
DRY_ALL = ["tests/test_user_paths.py::test_a_dry_run_refuses_what_the_run_refuses_of_its_data_machine_evaluations_"
           "and_lock"]
IMPORT_SIZES = ["tests/test_official.py::test_a_load_size_its_preprocess_does_not_use_is_refused_as_train_refuses_it"]
COLUMNS = ["tests/test_model.py::test_sample_columns_names_a_ground_truth_that_is_not_of_the_inputs_rows"]
FRESH_D = ["tests/test_user_paths.py::test_init_from_with_fresh_discriminators_of_other_options"]
NOTES = ["tests/test_compare.py::test_each_encoded_dash_says_its_rows_recorded_reason",
         "tests/test_compare.py::test_each_dash_gets_the_reason_of_its_row_and_column"]
# the Python API's audit (PA)
CP, LO = "engine/compare.py", "pipelines/loader.py"
MT = "tests/test_model.py::test_"
STATE = [MT + "a_state_dict_round_trip_keeps_the_moving_average_that_generate_samples_with"]
INPUTS = [MT + "generate_encode_and_train_step_take_inputs_to_the_models_device_and_dtype"]
FORM = [MT + "generate_and_encode_refuse_inputs_of_the_wrong_form_by_name"]
COUNTS = ["tests/test_user_paths.py::test_sample_and_evaluate_refuse_counts_the_command_refuses"]
NEITHER = ["tests/test_user_paths.py::test_a_model_that_is_neither_a_model_nor_a_path_is_refused_naming_the_argument"]
LOADER_ARGS = ["tests/test_pipelines_formats.py::test_bad_arguments_are_one_line_errors"]
# the API inside someone else's program (LH): generators and settings put back, loaders closed, bools refused
CZ = "tests/test_api_citizen.py::test_"
LEAVES = CZ + "a_call_leaves_the_callers_generators_and_process_settings_as_they_were"
OWN_DRAWS = [CZ + "the_runs_draws_are_its_seeds_whatever_the_callers"]
SETTINGS = [CZ + "device_settings_are_the_runs_inside_and_the_callers_after"]
GPUS_SEEDED = [CZ + "a_run_seeds_the_cpus_generator_and_its_gpus_alone"]
METRIC_NETS = ["tests/test_metrics.py::test_loading_the_metric_networks_leaves_the_callers_generator_as_it_was"]
FID_FILE, LPIPS_FILE = "engine/metrics/fid.py", "engine/metrics/lpips.py"
REFUSED = CZ + "a_switch_given_no_bool_is_refused_naming_it_and_the_value"
NUMPY_BOOLS = [CZ + "a_configs_switch_takes_numpys_bools_as_plain_bools"]
CHECK_BOOL = [CZ + "check_bool_takes_bools_numpys_and_none_where_optional"]
SA = "engine/sample.py"
CLOSED = [CZ + "close_ends_the_loaders_workers_at_once_and_iterating_after_is_an_error"]
NO_WORKER_LEFT = [CZ + "a_training_that_raises_leaves_no_loader_worker_behind"]
# the inference commands' loaders closed (LC)
INFERENCE_WORKERS = [CZ + "an_inference_call_leaves_no_loader_worker_behind"]
EPOCH_FILE = [CZ + "a_run_without_latest_pt_says_which_file_a_python_caller_passes"]
# nothing litters (NL): a refused command leaves nothing it made
LITTER = "tests/test_litter.py::test_"
AFTER_CHECK = [LITTER + "a_refusal_right_after_the_check_leaves_no_folder",
               LITTER + "check_writable_makes_nothing_and_probes_the_deepest_existing_folder"]
IN_THE_WAY = [LITTER + "a_file_in_the_way_is_refused_up_front"]
TRAIN_MADE = [LITTER + "a_refused_training_start_removes_the_run_folder_and_the_parents_it_made"]
EXPORT_MADE = [LITTER + "refusals_after_the_check_leave_no_results_folder"]
DOWNLOADED = ["tests/test_download.py::test_dataset_is_extracted_checked_and_marked"]
AT = "pipelines/atomic.py"
RACE = [REL + "a_write_in_progress_in_another_process_keeps_its_temp_file"]
STALE = [REL + "only_temp_files_no_live_writer_can_own_are_stale"]
LIVE_REPORT = ["tests/test_validation.py::test_an_evaluation_leaves_the_random_generators_and_the_networks_modes_"
               "as_they_were"]
ONCE = ["tests/test_commands.py::test_an_evaluation_builds_its_loader_once_and_measures_as_a_loader_of_its_own"]
COPY_BEFORE_RUN = ["tests/test_commands.py::test_an_evaluation_for_another_model_made_before_the_first_run_reads_a_"
                   "loader_of_its_own"]
TRAIN_EVAL_BROKEN = ["tests/test_validation.py::test_a_training_file_broken_mid_run_in_an_evaluation_of_the_training_"
                     "split_is_not_called_held_out"]
GUARD = [LITTER + "the_suite_fails_naming_what_its_tests_left_in_the_folder_it_runs_in"]
CONFTEST = "tests/conftest.py"
REFUSED_RESUME = [LOOP + "a_refused_resume_leaves_the_run_folder_as_it_was", LOOP + "the_resume_refused_above_"
                  "changes_the_folder_once_it_passes"]
REFUSED_NEW = [LOOP + "a_refused_new_run_leaves_no_run_folder"]
# what a resume keeps of the evaluations past its step: the run's and the dry run's checks of them
KEPT_EVALS = ["tests/test_validation.py", *DRY_ALL]
# the review of 0faacdf.. (RV)
RANKS_EPOCH_FILE = [CZ + "ranks_that_read_a_changing_checkpoint_name_the_epochs_file_too"]
DOWNLOAD_MADE = ["tests/test_download.py::test_a_failed_download_removes_the_folders_its_first_write_made"]
# Survivors that no test can kill (docs/mutation-engine.md says why): not counted against the run.
# LC04: the probe loader is never iterated, and no backend starts work before a pass.
# SR11: the names compared equal first, the whole input's list is equal where its digests are. SR16: the IEND
# chunk's type and CRC alone are a file's last 8 bytes only at its end (a cut file ending so is a 2^-64 chance).
# SR22: every rank reads the earlier record before rank 0's first round drops it (a collective lies between), so
# each rank's own look is rank 0's (each rank then reads every input's contents: the cost, not the files).
# AG14: the renamed files' temps are gone (the unlink is missing_ok) and their files closed by _fsync. AS09: the first
# failure in the jobs' order is raised either way, and those still running see the group discarded and remove their
# temps before the pools' shutdown lets the call end. SR38: the unlink is missing_ok; the listing saves a call per
# name. SR39: the folder is held (held_folder) by this
# call: no other call removes an image between the listing and the unlink. RS05: atomic_write lists the folder
# itself, each write (the cost TempFiles saves, not the files).
# DS07, DS16: DALI's CPU reader reads 2 batches past a list's end (the third: a GPU's margin). DS17: a read past the
# end fails in the pass's last batches, whose files still to come are all in the window looked at first. EK36: the
# folder's sweep after the loop removes the last model's files (one machine). MQ26: a checkpoint's measures_lost of ""
# where none was lost is read as none (_say_kept, cli._kept: its truth alone).
EQUIVALENT: set[str] = {"LC04", "SR11", "SR16", "SR22", "SR38", "SR39", "RS05", "DD03", "DD06", "DD15", "DD19",
                        "DD27", "DD29", "SV03", "KM07", "AG14", "AS09", "DS07", "DS16", "DS17", "EK36", "MQ26"}
SKIP = ""
# under torchrun (two gloo processes): the starts refused by the evaluations (rank 0's checks or rank 1's evaluation
# alone), the valid resume from an earlier epoch, the dry run (its launch: the launched fixture's)
TDD = "tests/test_distributed.py::test_under_torchrun_"
SPAWNED = ["tests/test_stop.py::test_a_spawned_loader_worker_ends_as_a_forked_one_does"]
REFUSED_EVALUATION = [CZ + "an_evaluation_refused_after_making_its_loader_closes_it"]
CL = "pipelines/cpu_loader.py"
LOCKED_UP = ["tests/test_stop.py::test_a_loader_worker_locked_up_in_its_fork_is_started_again"]
TD_REFUSED = [TDD + "a_start_refused_by_its_evaluations_changes_nothing"]
TEMPS_OWN = ["tests/test_export.py::test_an_export_writes_a_temp_file_of_its_own_and_the_model_with_the_usual_"
             "permissions", "tests/test_demo.py::test_the_demo_folder_is_written_in_a_temp_folder_of_its_own_removed_"
             "whatever_stops_it"]
BILINEAR = ["tests/test_compile.py::test_inductor_compiles_the_bilinear_upconv_of_a_plane_one_pixel_wide",
            "tests/test_model.py::test_the_bilinear_upconv_gives_the_references_values_gradients_and_layout"]
REF_NAMES = ["tests/test_commands.py::test_the_references_options_are_answered_with_what_to_give_here",
             "tests/test_commands.py::test_an_option_of_another_command_is_named_with_the_commands_that_take_it"]
TD_BACK = [TDD + "going_back_sets_the_later_checkpoints_aside_once"]
TD_DRY = [TDD + "a_dry_run_prints_the_config_and_the_preset_note_once"]
FI, PE, UP = "pipelines/files.py", "tests/test_pipelines_errors.py::test_", "tests/test_pipelines.py::test_"
NOT_REG = [PE + "a_named_pipe_or_a_link_to_a_device_is_refused_not_read"]
DALI_UTF8 = [PE + "dali_refuses_a_file_name_that_is_not_utf8_by_name_and_torch_reads_it"]
BESIDE = [UP + "aligned_files_beside_a_and_b_folders_are_said_to_be_left_out"]
ABOVE = [UP + "a_link_to_a_folder_above_is_not_followed"]
OTHER_FMT = [UP + "images_of_formats_not_read_are_said_to_be_left_out"]
AB_WHERE = [PE + "a_bad_b_file_is_said_to_be_in_the_split_not_in_a"]
NEWLINE = [PE + "a_bad_file_whose_name_holds_a_newline_is_one_line_of_the_list"]
NOT_UTF8 = ["tests/test_user_paths.py::test_an_input_whose_name_is_not_utf8_gets_its_gallery"]
GLOO_END = ["tests/test_distributed.py::test_a_gloo_group_is_ended_after_a_moment_without_the_gil"]
FUSE_DB = ["tests/test_norm_act.py::test_fuse_norm_act_builds_layers_for_a_gradient_penalty"]
NFC = ["tests/test_pipelines.py::test_ab_folders_pair_names_equal_in_unicode_composed_form"]
NOT_FILE = ["tests/test_reliability.py::test_a_device_or_a_pipe_given_as_a_file_to_write_is_refused_and_left_as_it_"
            "was"]
SUBS_RO = ["tests/test_reliability.py::test_a_run_folder_whose_checkpoints_or_grids_cannot_be_written_is_refused_"
           "before_work"]
SECOND_INT = ["tests/test_stop.py::test_a_second_sigint_during_a_save_stops_once_the_checkpoint_is_written"]
PIPE = ["tests/test_stop.py::test_a_closed_output_stops_the_run_as_a_sigterm_does_its_checkpoint_written",
        "tests/test_stop.py::test_a_command_whose_output_closes_ends_quietly_with_sigpipes_status"]
EX, TR = "engine/export.py", "engine/trainer.py"
EXPORT_SUFFIX = ["tests/test_export.py::test_onnx_under_another_suffix_is_binary_onnx"]
EXPORT_CLI = ["tests/test_export.py::test_cli_errors_name_the_problem"]
REUSE_READ = ["tests/test_sweep.py::test_reuse_reads_a_checkpoint_changed_since_its_measurement_and_keeps_no_result_"
              "of_a_damaged_one"]
EPOCH_NAMES = ["tests/test_workflow.py::test_only_files_named_as_the_run_names_them_are_its_epochs"]
SERVE_TERM = ["tests/test_serve.py::test_a_stopped_server_exits_with_the_signals_code_and_leaves_no_temp_folder"]
MPO = ["tests/test_serve.py::test_a_cameras_mpo_jpeg_is_taken_as_its_first_picture"]
LONG_ID = ["tests/test_serve.py::test_bad_generate_requests_say_what_is_wrong"]
FORK_LOCK = ["tests/test_user_paths.py::test_a_forked_child_does_not_keep_the_run_folders_lock"]
EVAL_DATA = ["tests/test_validation.py::test_a_held_out_file_broken_mid_run_stops_the_evaluation_of_its_step_and_says_"
             "so"]
SPLIT_GONE = ["tests/test_validation.py::test_a_held_out_split_deleted_mid_run_is_said_as_such_and_its_step_kept"]
FIRST_BAD = ["tests/test_pipelines_errors.py::test_no_usable_image_among_the_first_max_dataset_size_says_the_rest_"
             "were_not_looked_at"]
NAMES_EMPTY = ["tests/test_compare.py::test_names_default_unique_and_given"]

# session 36's user passes (US01-US57): hang-ups, interpolation's frames, resumes onto other files, PIL's limit,
# divergences between log intervals, the progress line, images/s, resumes' views, evaluations of nothing,
# torchrun's refusals said once, objective options a variant has no use for, init_from across variants
ST, RP = "tests/test_stop.py::test_", "tests/test_report.py::test_"
HANG_UP = [ST + "a_hang_up_stops_as_a_sigterm_does", ST + "a_closed_terminal_stops_the_run_as_a_sigterm_does_its_"
           "checkpoint_written", ST + "a_closed_terminal_stops_the_command_with_its_checkpoint_and_it_resumes",
           ST + "loader_workers_leave_a_signal_to_the_group_to_the_loading_process", ST + "the_signals_ride_in_the_"
           "losses_all_reduce", ST + "handlers_are_installed_while_training_only_and_restored_on_every_exit"]
FRAMES = ["tests/test_interpolate.py::test_more_frames_than_a_strip_can_hold_are_refused_before_any_work"]
OTHER_FILES = ["tests/test_trainer_loop.py::test_resume_on_other_files_of_as_many_samples_is_refused_and_a_copy_"
               "elsewhere_resumes"]
PIL_LIMIT = ["tests/test_commands.py::test_a_max_pixels_over_pils_limit_is_taken_by_the_commands_and_said_in_python"]
BETWEEN = [RP + "a_divergence_found_between_log_intervals_is_logged_and_reported",
           RP + "a_non_finite_loss_reaches_tensorboard_as_such"]
MARKED = [RP + "a_diverged_runs_charts_share_its_steps_and_mark_where_it_broke"]
CAPTION = [RP + "the_grid_caption_names_the_variants_columns"]
ZERO_AXIS = [RP + "chart_leaves_out_what_it_cannot_draw"]
FITS = ["tests/test_user_paths.py::test_the_progress_line_on_a_terminal_fits_its_width_and_shows_small_losses"]
ASIDE = ["tests/test_trainer_loop.py::test_images_per_second_leave_out_the_time_of_grids_evaluations_and_saves"]
VIEWS = ["tests/test_trainer_loop.py::test_going_back_shows_the_kept_steps_not_the_abandoned_ones"]
NOTHING = ["tests/test_validation.py::test_what_the_data_cannot_measure_is_refused_before_the_first_step"]
ONCE = ["tests/test_distributed.py::test_under_torchrun_a_refusal_every_process_meets_alike_is_one_line"]
INTERRUPT = ["tests/test_user_paths.py::test_an_interrupt_under_torchrun_is_said_once_with_the_launch_that_resumes"]
DELETE = ["tests/test_trainer_loop.py::test_a_run_stopped_before_its_first_checkpoint_says_to_delete_its_folder"]
UNUSED = ["tests/test_reliability.py::test_an_objective_option_the_variant_has_no_use_for_is_refused",
          "tests/test_reliability.py::test_the_options_the_variant_uses_are_taken"]
VARIANTS = ["tests/test_user_paths.py::test_init_from_another_variant_takes_its_generator_and_encoder_with_fresh_"
            "discriminators", "tests/test_reliability.py::test_fine_tuning_may_change_sizes_dropout_and_init_but_not_"
            "the_networks"]
HALVES = ["tests/test_config.py::test_a_size_that_halves_fewer_than_two_times_is_refused"]
ONE_PASS = ["tests/test_pipelines_formats.py::test_two_iterators_of_the_torch_loader_open_at_once_are_one_pass_at_a_"
            "time", "tests/test_pipelines_formats.py::test_a_pass_started_while_an_earlier_iterator_lives_reads_the_"
            "whole_epoch"]
DEVICE = ["tests/test_pipelines_formats.py::test_bad_arguments_are_one_line_errors"]
TK, TB = "bench/track.py", "tests/test_bench.py::test_"
INGEST = [TB + "ingest_takes_each_figure_from_one_file_and_one_machines_files_alone",
          TB + "ingest_merges_a_check_into_one_history_entry"]
SCRATCH = [TB + "a_scratch_history_keeps_to_its_own_results_and_a_dry_run_to_its_own_history"]
SETTINGS = [TB + "compare_judges_runs_of_the_same_settings_against_committed_ones_and_says_an_unchecked_gate"]
BAD_HISTORY = [TB + "bad_histories_are_one_line_errors"]
NO_GPU = ["tests/test_bench_gpu_check.py::test_the_check_itself_is_refused_at_once_without_a_gpu"]
TUNE_CMD = ["tests/test_kernel_tune.py::test_a_dry_run_of_some_sites_runs_as_a_command_and_one_without_triton_says_"
            "what_it_needs"]
NO_SKIP = ["tests/test_user_paths.py::test_a_model_trained_with_skip_bad_is_evaluated_strictly_with_no_skip_bad"]
# session 37 (AW)
EXPORT_SIDES = ["tests/test_export.py::test_a_side_that_is_no_positive_integer_is_refused_by_name"]
EXPORT_FULL = ["tests/test_export.py::test_a_pt2_export_the_disk_cannot_take_is_one_line_not_an_abort"]
SERVE_SLERP = ["tests/test_serve.py::test_slerp_of_parallel_codes_is_linear_and_slerp_is_the_default_as_the_commands"]
ERRORS_OUT = [CZ + "every_error_type_a_user_can_meet_is_exported"]
TM = "tests/test_metrics.py::test_"
CODES = [TM + "an_inputs_codes_do_not_depend_on_how_many_inputs_are_evaluated"]
LPIPS_SE = [TM + "lpips_diversity_follows_the_papers_protocol"]
TSW = "tests/test_sweep.py::test_"
PROTOCOL_FILES = [TSW + "a_protocol_changes_with_the_splits_files_and_the_metric_weights_files"]
ABSOLUTE = [TSW + "the_data_folder_is_recorded_absolute_and_read_from_anywhere"]
TCP = "tests/test_compare.py::test_"
NO_Z = [TCP + "picture_rows_are_each_model_on_the_same_inputs_and_codes"]
NO_Z_HEAD = [TCP + "n_samples_is_refused_where_no_model_has_z_and_taken_where_one_has"]
TO_STDERR = [TSW + "reuse_measures_only_the_checkpoints_whose_file_or_protocol_changed",
             TSW + "each_row_and_eval_json_equals_evaluate_of_that_checkpoint"]
WRITE_FIRST = [TM + "evaluate_writes_its_results_before_it_prints_them"]
CLOSED = [TM + "a_closed_stderr_or_stdout_changes_nothing_of_the_work"]
LONG = [REL + "a_name_near_the_file_systems_limit_is_written_and_its_killed_writes_temp_is_found"]
DEMO_FULL = ["tests/test_demo.py::test_a_make_demo_the_disk_cannot_take_is_one_line_and_leaves_no_cut_file"]
MID_RUN = [REL + "data_broken_mid_run_names_the_step_and_the_checkpoint_to_resume"]
UPCONV = [MT + "the_bilinear_upconv_gives_the_references_values_gradients_and_layout"]
OUTSIDE = ["tests/test_user_paths.py::test_a_checkpoint_outside_a_run_starts_a_run_with_the_options_it_stores"]
PEEK = [REL + "a_peek_at_a_file_that_is_no_torch_file_says_so"]
EPOCHS = [REL + "find_checkpoint_takes_a_file_a_run_folder_or_an_epoch"]
IMPORT_ABS = ["tests/test_workflow.py::test_import_official_with_the_settings_of_an_authors_model"]
HINTS = ["tests/test_commands.py::test_the_references_test_and_video_options_are_answered_as_each_command_takes_them"]
TESTSET = ["tests/test_download.py::test_mirror_variable_redirects_every_address"]
LOOPS = [LITTER + "check_writable_makes_nothing_and_probes_the_deepest_existing_folder"]
STOPPED = ["tests/test_commands.py::test_the_next_call_removes_the_images_of_a_call_stopped_part_way"]
CUT_WRITE = [REL + "io_a_failed_write_names_the_file_the_reason_and_the_free_space"]
GRID_FAIL = [REL + "a_sample_grid_that_cannot_be_written_names_the_step_and_the_checkpoint_to_resume"]
GRID_ONCE = [LOOP + "samples_and_checkpoints_come_at_their_steps", "tests/test_trainer.py"]
GIF = ["tests/test_interpolate.py::test_a_gifs_frames_keep_their_pictures_colours"]
NUM_INPUTS = ["tests/test_user_paths.py::test_an_inference_reads_num_inputs_whatever_the_runs_max_dataset_size"]
RESULTS_RO = [TM + "an_unwritable_results_folder_is_said_as_the_results_with_json_to_go_elsewhere"]
THROUGH = [REL + "a_write_to_a_symbolic_link_goes_to_its_target_and_the_link_stays"]
DUMB = ["tests/test_user_paths.py::test_the_progress_line_on_a_terminal_fits_its_width_and_shows_small_losses"]
NONE_OTHER = [REL + "a_damaged_latest_checkpoint_names_the_runs_others_to_resume_from"]
NOT_A_FILE = [REL + "io_torch_files_that_cannot_be_read_say_why"]
# Session 38's passes (serve, torchrun, large data, the design documents, reproducibility; upgrades, the
# Python API, the commands' speed): SQ01-SQ55
SV = "engine/serve.py"
TSV = "tests/test_serve.py::test_"
TWF = "tests/test_workflow.py::test_"
AUTO_CLI = [TWF + "resume_auto_starts_the_run_once_and_continues_it_on_every_later_start"]
AUTO_PY = [TWF + "resume_auto_picks_the_newest_checkpoint_and_takes_init_from_once"]
BATCHES = [TSV + "a_requests_outputs_are_made_in_batches_of_bounded_size"]
KEPT = [TSV + "uploads_kept_hold_at_most_four_of_the_largest_size"]
HOSTS = [TSV + "other_sites_big_or_deep_bodies_and_foreign_host_names_are_refused"]
GONE = [TSV + "an_upload_whose_client_goes_away_is_one_answer_not_a_traceback"]
STOPS = [TSV + "stopping_says_so_and_ends_generations"]
PORT = [TSV + "a_port_in_use_is_said_before_the_model_and_its_inputs_load"]
NO_REF = [TSV + "encode_and_interpolate_without_an_image_id_say_so"]
ALL_BAD = [PE + "more_bad_files_than_a_message_names_are_all_listed_in_a_file"]
WORKERS = [PE + "more_workers_than_cores_is_one_line_of_ours"]
NUMPY = ["tests/test_config.py::test_numpy_scalars_are_taken_as_pythons_and_a_functions_numpy_int_is_said_so"]
SAME_FILE = ["tests/test_trainer.py::test_a_run_made_again_writes_the_same_checkpoint"]
ROUNDING = ["tests/test_trainer.py::test_a_resume_that_changes_how_the_step_computes_says_so"]
CZ_KEPT = [CZ + "a_call_leaves_the_callers_generators_and_process_settings_as_they_were"]
LAUNCH = ["tests/test_commands.py::test_a_launchs_variables_that_cannot_be_are_one_line"]
MEET = ["tests/test_commands.py::test_a_launch_without_the_address_to_meet_at_is_one_line"]
PALETTES = [TM + "a_palettes_file_that_cannot_be_read_is_one_line_naming_it"]
UNREADABLE = [PE + "a_folder_that_cannot_be_read_is_said_not_taken_for_one_without_images"]
TCM = "tests/test_commands.py::test_"
DTYPES = [TCM + "the_inference_functions_take_a_model_of_another_dtype"]
DEVICES = [TCM + "devices_are_named_as_the_commands_take_them_and_a_models_own_is_kept"]
TRAIN_MODE = [MT + "train_step_trains_in_training_mode_after_an_eval_for_a_preview"]
ONE_VALUE = ["tests/test_norm_act.py::test_bad_input_errors"]
NO_SUFFIX = ["tests/test_export.py::test_cli_errors_name_the_problem"]
NO_TRITON = ["tests/test_optional_imports.py::test_a_cpu_forward_without_the_interpreter_imports_no_triton"]
TABLE_LINE = [TCM + "a_demo_run_says_that_it_measures_its_table_before_the_seconds_it_takes"]
OLD_IMPORT = ["tests/test_trainer.py::test_import_official_replaces_an_import_but_not_a_trained_checkpoint"]
OLDER_ROWS = [TSW + "reuse_measures_only_the_checkpoints_whose_file_or_protocol_changed"]
OLDER_FORMAT = [REL + "a_checkpoint_of_the_older_format_is_said_as_such"]
VERSION = [TCM + "the_version_is_the_installed_distributions"]
BATCH_FORM = [MT + "a_batch_of_the_wrong_form_is_refused_naming_what_is_expected"]

DAMAGED_CACHE = ["tests/test_check_cache.py::test_off_unreadable_stale_and_unwritable_caches"]
BEFORE_COMMAND = [TCM + "an_option_before_the_command_is_said_to_go_after_it"]
TUNING_START = ["tests/test_kernel_tune.py::test_a_training_refuses_a_tuning_table_it_cannot_use_before_it_writes_its_"
                "folder"]
TUNING_MERGE = ["tests/test_kernel_tune.py::test_merge_adds_a_partial_sweep_to_a_table"]
DRY_WRITABLE = ["tests/test_user_paths.py::test_a_dry_run_refuses_what_the_run_refuses_of_its_data_machine_evaluations_"
                "and_lock"]
RESUME_TYPO = ["tests/test_user_paths.py::test_a_dry_run_refuses_the_resumes_the_run_refuses_with_its_words"]
DAMAGED_INGEST = ["tests/test_bench.py::test_ingest_merges_a_check_into_one_history_entry"]
NON_FINITE = [TSV + "non_json_and_non_finite_bodies_are_refused"]
FP16_RESUME = ["tests/test_model.py::test_a_resumed_fp16_run_keeps_its_loss_scale"]
ENCODED = [TSV + "encode_returns_the_encoders_mean_of_b", TSV + "uploaded_reference_is_encoded"]
FL, TPF, TUP = "pipelines/files.py", "tests/test_pipelines_formats.py::test_", "tests/test_user_paths.py::test_"
NONFINITE_OUT = ["tests/test_reliability.py::test_a_model_whose_outputs_overflow_is_refused_by_sample_and_evaluate_not_"
                 "drawn_black"]
TIFF_TURN = [TPF + "tiff_webp_and_jpeg2000_content_decode_to_their_pixels"]
ONLY_PIL = [TPF + "content_only_pil_reads_is_refused_or_skipped_alike"]
CMYK_OK = [TPF + "pixel_formats_decode_as_expected"]
BESIDE = ["tests/test_pipelines.py::test_aligned_files_beside_a_and_b_folders_are_said_to_be_left_out"]
LONG_NAMES = [TUP + "inputs_of_the_longest_names_get_outputs_and_a_list_of_names_that_cannot_be_stops_nothing"]
DOTS = [TUP + "results_of_two_models_never_share_a_folder"]
PLAIN_NAMES = [TUP + "a_plain_folders_results_are_named_after_it_not_the_test_split"]
REFS = ["tests/test_interpolate.py::test_encoded_path_goes_through_the_reference_images_codes"]
DATA_LINK = [TUP + "a_dataset_reached_through_a_link_is_recorded_by_the_link"]
SWEEP_RO = [TSW + "an_unwritable_json_is_refused_before_any_checkpoint_is_measured"]
DATA_MOVED = [TUP + "checkpoints_from_before_the_data_moved_read_it_where_the_run_says_it_is_now"]
DEMO_AGAIN = [TUP + "a_demo_run_copied_without_its_data_says_how_to_make_it_again"]
RESUME_NOTE = [TUP + "a_checkpoint_of_a_run_continued_into_a_new_folder_keeps_the_runs_options"]
KEEP_MODE = ["tests/test_reliability.py::test_io_writes_create_folders_and_get_the_usual_permissions"]
SERVE_TABLE = [TSV + "a_tuning_table_that_cannot_be_used_is_refused_as_serve_starts"]
SERVE_OVERFLOW = [TSV + "a_model_whose_outputs_overflow_is_answered_so_not_shown_black"]
FOREIGN = [TSV + "other_sites_big_or_deep_bodies_and_foreign_host_names_are_refused"]
HELP_TEXTS = [TCM + "help_texts_say_what_the_commands_do"]
CROP_SIDES = ["tests/test_interpolate.py::test_the_data_settings_as_sample_takes_them_let_such_an_input_through"]
DEMO_NONE = ["tests/test_demo.py::test_make_demo_command_takes_the_shade"]
TO_GO = [TUP + "resuming_says_from_which_step_and_that_a_finished_run_has_nothing_to_train"]
TRACK_ALL = ["tests/test_bench.py::test_compare_command_exit_codes_and_bad_input"]
PHONE_TABLES = ["tests/test_serve_browser.py::test_on_a_phone_the_sweep_and_compare_tables_scroll_in_their_box_"
                "and_long_names_let_pictures_show"]
NAMES_CUT = ["tests/test_compare.py::test_names_beside_the_picture_rows_are_packed_and_cut_so_that_they_stay_apart"]
COVER = ["tests/test_compare.py::test_scatter_labels_cover_no_other_point_and_stay_in_the_plot_where_they_fit"]
STALE_ROW = ["tests/test_serve_browser.py::test_encode_a_reference_and_interpolate"]
ORDER = ["tests/test_report.py::test_result_folders_are_listed_in_the_order_of_their_numbers"]

# (id, file, original text, mutant text, tests)
# Session 39's passes (the GPU-only code read without a GPU, exported models used elsewhere, the pages and plots, a
# security review, the paper's comparison, every option at its edges, the kernels' numerics; then torch versions,
# other systems, the training options, two processes at once): HS02-HS58
TRP, TCM, TCO = "tests/test_report.py::test_", "tests/test_commands.py::test_", "tests/test_compare.py::test_"
TSW, TEX, TCF = "tests/test_sweep.py::test_", "tests/test_export.py::test_", "tests/test_config.py::test_"
FINAL_TAG = [TRP + "a_demo_runs_final_evaluation_is_logged_in_the_runs_event_file"]
ZERO_AXES = [TCO + "scatter_of_all_zero_values_spans_0_to_1"]
SCHEDULE = [TRP + "the_live_status_is_where_the_report_says_the_run_is"]
GALLERY = ["tests/test_user_paths.py::test_every_inference_command_reads_a_plain_folder_as_inputs_only"]
MARKUP = [TSW + "a_checkpoints_step_that_is_not_a_number_is_refused_and_pages_escape_their_values"]
PLANTED = [TCM + "a_planted_list_of_written_images_removes_nothing_but_images_and_nothing_through_a_link"]
NO_EPOCH = [TRP + "a_log_line_whose_epoch_is_no_number_is_skipped_not_the_page"]
CLR_Z = [TCF + "clr_without_the_latent_regression_is_refused"]
STDERR = [TCO + "lpips_diversity_is_shown_with_its_standard_error_as_evaluate_prints_it"]
ONE_CKPT = [TSW + "nothing_measured_says_so_with_exit_2_and_writes_the_rows_where_a_sweep_of_that_split_goes"]
ARCHIVE = ["tests/test_download.py::test_what_tar_alone_does_not_see_is_refused"]
LAN = [TSV + "other_sites_big_or_deep_bodies_and_foreign_host_names_are_refused"]
LAN_SERVE = [TSV + "serve_answers_on_ipv6_loopback_and_checks_hosts_there_and_reads_only_its_inputs"]
RUN_FILES = [TEX + "an_export_replaces_no_run_file_and_a_failed_sidecar_keeps_the_earlier_pair"]
LOAD_FITS = [TEX + "a_size_beyond_what_the_preprocess_loads_is_refused"]
SIDECAR = [TEX + "the_sidecar_says_the_variant_the_batch_bound_and_how_sample_draws_z"]
NO_ORT = [TEX + "onnx_without_onnxruntime_is_checked_and_says_so"]
EMPTY = [TCM + "an_empty_value_is_refused_by_the_options_name"]
EMPTY_PATH = [TCF + "an_empty_path_is_refused"]
RESUMED_LENGTH = [TRP + "a_resumed_run_says_its_own_length_from_its_start"]
SWEEP_PM = [TSW + "the_terminal_table_gives_lpips_with_the_standard_error_its_note_names"]
ARITH = ["tests/test_trainer.py::test_a_resume_that_changes_how_the_step_computes_says_so"]
OLD_ONNX = [TEX + "an_onnx_exporter_without_what_the_export_needs_is_said_so"]
MPS = ["tests/test_commands.py::test_devices_are_named_as_the_commands_take_them_and_a_models_own_is_kept"]
CASE_BLIND = ["tests/test_user_paths.py::test_output_names_are_apart_as_case_blind_file_systems_tell_them_apart"]
NO_SIGWAIT = ["tests/test_stop.py::test_without_sigwaitinfo_a_signal_to_the_process_group_still_stops_with_a_"
              "checkpoint"]
NO_UNIX = ["tests/test_optional_imports.py::test_the_package_imports_and_trains_without_what_only_unix_has"]
NO_D = ["tests/test_reliability.py::test_an_objective_option_the_variant_has_no_use_for_is_refused"]
TWO_DL = ["tests/test_download.py::test_an_archive_without_a_top_folder_gets_the_usual_permissions_and_old_"
          "extractions_go"]
LOST_PART = ["tests/test_download.py::test_a_partial_file_another_download_removed_is_said_so"]
RACED_PAGE = [TRP + "files_removed_while_the_page_is_written_are_left_out_not_fatal"]
EMPTY_API = ["tests/test_commands.py::test_the_python_api_refuses_an_empty_out_or_dataroot_too"]
LOAD_PIXELS = [TCF + "a_load_size_whose_images_pass_max_pixels_is_refused"]
STRETCH = ["tests/test_workflow.py::test_sample_default_phase_direction_and_aspect_ratio"]
MIRROR = ["tests/test_download.py::test_urls_are_the_reference_scripts_and_a_mirror_keeps_the_path"]
DEMO_PIXELS = ["tests/test_demo.py::test_files_over_the_loaders_pixel_limit_are_refused_before_any_is_drawn"]
DRY_MAIN = ["tests/test_bench_gpu_check.py::test_dry_run_reaches_every_step_and_writes_every_file"]

# Session 41's passes (runs of earlier versions, the pages for every reader, resources over long work, the method
# against the authors' code, claims in comments and docs, the CPU paths' speed; a review of the mends; counts at
# scale; a second review): SG01-SG47
SG_BROWSER = "tests/test_serve_browser.py::test_"
SG_X = "engine/static/explorer.html"
SG_ENLARGE = ["tests/test_interpolate.py::test_small_images_are_enlarged_to_at_least_view_px"]
SG_KEYS = [SG_BROWSER + "the_explorer_by_keyboard_alone"]
SG_NAMES = [SG_BROWSER + "the_explorer_names_its_controls_and_says_what_happens"]
SG_NARROW = [SG_BROWSER + "at_320_px_the_explorer_and_the_charts_fit_the_screen"]
SG_STILL = [SG_BROWSER + "a_gallery_holds_still_where_reduced_motion_is_asked"]
SG_SAID = ["tests/test_report.py::test_every_page_says_its_language_and_charts_say_what_they_show"]
SG_POINTS = ["tests/test_report.py::test_the_report_points_to_its_checkpoints_evaluations_instead_of_saying_none"]
SG_BEST = [TSW + "the_page_charts_each_measure_rings_the_best_and_links_each_eval_json",
           TSW + "a_checkpoints_step_that_is_not_a_number_is_refused_and_pages_escape_their_values"]
SG_THIN = ["tests/test_trainer_loop.py::test_grids_to_keep_by_hand_and_as_a_run_thins_them",
           "tests/test_trainer_loop.py::test_keep_grids_bounds_the_sample_grids_of_a_run_and_its_resume",
           "tests/test_trainer_loop.py::test_keep_grids_counts_grids_of_an_interval_changed_on_resume"]
SG_REUSE = [TSW + "reuse_measures_only_the_checkpoints_whose_file_or_protocol_changed"]
SG_REAL = [TSW + "metric_networks_load_once_and_every_checkpoint_shares_the_inputs",
           TSW + "real_features_are_read_anew_for_a_file_changed_since"]
SG_REWRITTEN = [TSW + "real_features_are_read_anew_for_a_file_rewritten_keeping_its_size_and_mtime"]
SG_OLD_KEPT = [REL + "a_checkpoint_of_the_older_format_is_kept_from_every_output"]
SG_OLD_RUN = [REL + "a_run_of_an_older_version_is_said_as_such_and_kept"]
SG_EARLIER = [REL + "a_run_an_earlier_version_trained_with_options_now_refused_still_samples"]
SG_BTOA = [TSW + "real_features_of_b_read_from_a_are_read_anew_when_that_file_changes"]
SG_STRAY = [REL + "a_runs_own_checkpoints_decide_its_format_not_a_file_copied_in"]
SG_FIRST = [REL + "a_run_of_epoch_checkpoints_only_is_told_by_its_first_that_opens"]
SG_OTHERS = [REL + "a_damaged_latest_checkpoint_names_the_runs_others_to_resume_from"]
SG_DRY_BAD = ["tests/test_pipelines_errors.py::test_more_bad_files_than_a_message_names_are_all_listed_in_a_file"]
SG_SERVE_NUM = [TSV + "more_inputs_than_serve_holds_are_refused_before_any_is_read"]
SG_TRAINABLE = [TCF + "a_shared_discriminator_needs_the_encoded_branchs_gan_loss",
                TCF + "a_variant_whose_terms_all_weigh_zero_is_refused"]

# Session 42's passes (security; dead code; the kernels in other GAN code; the suite on another CI machine;
# packaging; the demo's wall time), work read once or in pieces, and a review of the mends: SH01-SH32
SH_PIECES = ["tests/test_report.py::test_the_log_is_read_in_pieces_as_it_would_be_read_whole"]
SH_TRUNC = ["tests/test_trainer.py::test_a_resume_keeps_the_log_lines_up_to_its_checkpoint"]
SH_EVAL_LOG = ["tests/test_trainer.py::test_a_resume_reads_the_evaluation_log_as_its_report_does"]
# The long-runs pass: a resume's reading of a long log (LR01-LR04)
LR_ONCE = ["tests/test_trainer.py::test_a_resume_after_a_kill_parses_each_log_line_once_for_its_report"]
LR_END = ["tests/test_trainer.py::test_a_resume_reads_the_log_from_its_end_to_its_checkpoint_s_line"]
LR_STEPLESS = ["tests/test_trainer.py::test_a_resume_keeps_another_tools_lines_and_drops_the_later_steps_around_them"]
SH_CAPTION = ["tests/test_compare.py::test_a_model_whose_outputs_are_not_finite_gets_a_row_and_the_others_are_written"]
SH_GRID = ["tests/test_report.py::test_a_grid_declaring_more_pixels_than_a_page_draws_is_linked_not_decoded"]
SH_SERVE = [TSV + "what_one_client_holds_is_bounded_in_time_and_the_list_never_waits_for_the_model",
            TSV + "queued_generations_wait_outside_the_thread_pool"]
SH_OUT = ["tests/test_bench_gpu_check.py::test_without_out_a_folder_of_its_own_is_made_not_one_another_user_placed"]
SH_FITS = [REL + "weights_that_do_not_fit_their_own_config_are_named",
           REL + "a_run_an_earlier_version_trained_with_options_now_refused_still_samples"]
SH_TAR = ["tests/test_download.py::test_what_tar_alone_does_not_see_is_refused"]
SH_LONG_DIR = ["tests/test_download.py::test_a_folder_path_too_long_is_the_disks_and_keeps_the_download"]
SH_RESUMED = [REL + "a_resume_checks_its_checkpoints_weights_before_the_model_is_built"]
SH_COMPILE = ["tests/test_compile.py::test_inductor_compiles_the_reference_layer_for_shapes_that_change"]
SH_FUNC = "tests/test_kernel_func.py::test_"
SH_BATCHED = [SH_FUNC + f"transform_matches_the_reference[{layer}-{t}]" for layer in ("norm_relu_affine", "zconv")
              for t in ("grads_batched", "jacobian_vectorized")]
SH_FWD = [SH_FUNC + "forward_mode_is_refused_naming_impl_ref"]
SH_SCRIPT = [SH_FUNC + "torchscript_is_refused_by_the_layers_name"]

# Session 43's pass: the commands in the shell around them (h-sh), SI01-SI20
SI = "tests/test_shell.py::test_"
SI_REPORT = [SI + f"a_reader_gone_before_the_results_line_still_has_the_report_rewritten[argv{i}]" for i in (0, 1)]
SI_SIGNAL = [SI + f"a_sigterm_or_hang_up_during_sample_leaves_no_half_written_file_and_says_so[{case}]"
             for case in ("15-False", "1-False", "1-True")]
SI_SIGNAL += [SI + "the_handlers_are_the_commands_alone_and_given_back"]
SI_SAMPLE_LINES = ("        report = _refresh_report(checkpoint)\n"
                   "        print(f\"results: {out}\\ngallery: {out / 'index.html'}\\ngrid: {out / 'grid.png'}"
                   "{report}\")")
# (the old order: the lines printed, then the report rewritten)
SI_SAMPLE_SWAPPED = ("        print(f\"results: {out}\\ngallery: {out / 'index.html'}\\ngrid: {out / 'grid.png'}\")\n"
                     "        report = _refresh_report(checkpoint)")
SI_RANK = [SI + f"under_torchrun_rank_0_alone_says_the_stop[{r}]" for r in (0, 1)]
SI_EXPORT = [SI + "a_ctrl_c_inside_the_exporter_is_a_ctrl_c_not_a_failed_export[KeyboardInterrupt-KeyboardInterrupt]",
             SI + "an_export_removes_what_a_killed_export_left"]
SI_STALE = [SI + "stale_temps_are_those_of_gone_writers_of_that_name_and_suffix",
            SI + "an_export_removes_what_a_killed_export_left"]
SI_GROUP = [SI + "the_demo_data_keeps_a_group_folders_setgid_and_clears_a_killed_runs_part",
            SI + "a_downloaded_dataset_keeps_a_group_folders_setgid",
            SI + "the_run_folders_lock_file_takes_the_umask_and_a_read_only_one_still_locks"]
SI_UTF8 = [SI + "a_folder_whose_name_is_not_utf8_is_checked_cached_and_reported"]
SI_ONCE = [SI + "the_cache_that_cannot_be_saved_is_said_once"]
SI_HOME = [SI + f"a_tilde_the_shell_left_is_the_home_folder[{case}]" for case in
           ("argv0-out-{home}/runs/t", "argv1-dataroot-{home}", "argv2-models-expanded2")]
SI_BAR = [SI + f"the_download_line_fits_the_terminal_and_its_term[{term}]" for term in ("xterm", "dumb")]
SI_ORT = [SI + "onnxruntime_says_only_its_errors"]
SI_HUNG = [SI + "a_stop_on_a_terminal_that_hung_up_still_ends_with_the_signals_code"]
SI_DL = [SI + "a_stopped_download_says_its_partial_file_is_kept"]
SI_HELD = [SI + "a_stop_during_a_checkpoints_write_waits_for_its_end"]
SI_OWN = [SI + "a_ctrl_c_inside_the_exporter_is_a_ctrl_c_not_a_failed_export[GeneratorExit-ExportError]"]
SI_RANKS = ["tests/test_check_cache.py::test_ranks_compare_a_listing_whose_names_are_not_utf8"]
SI_NFS = [SI + "a_lock_that_cannot_be_taken_read_only_is_said"]
SI_FIT = [SI + "a_status_line_fits_the_terminal_it_is_written_to"]
SI_NAMES = [SI + "a_tilde_the_shell_left_is_the_home_folder[argv3-names-~/mine,theirs]"]
SI_WEIGHTS = ["tests/test_metrics.py::test_every_missing_weights_file_is_named_in_one_error"]
SI_FINISHED = ["tests/test_user_paths.py::test_resuming_says_from_which_step_and_that_a_finished_run_has_nothing_to_"
               "train"]
SJ = "tests/test_stop.py::test_"
SJ_LOOP = [SJ + "a_ctrl_c_stops_a_shell_loop_of_trainings_not_only_the_training_it_interrupted"]
SJ_TERM = [SJ + "a_signal_to_the_process_group_stops_the_command_with_workers_and_it_resumes_exactly[TERM]"]
SJ_VARIANT = ["tests/test_config.py::test_a_variant_is_checked_for_the_networks_it_builds_alone[pix2pix]"]
SJ_BUILD = ["tests/test_config.py::test_the_builders_check_the_network_they_build"]
SJ_SCALE = ["tests/test_config.py::test_a_single_scale_is_not_told_to_use_fewer_scales"]
SJ_JSON = "tests/test_sweep.py::test_"
SJ_STREAM = [SJ_JSON + "a_stream_or_a_link_to_a_pipe_given_as_the_json_is_refused_before_the_work[one]"]
SJ_DASH = [SJ_JSON + "json_dash_puts_the_results_on_stdout_and_the_table_on_stderr[one]"]
SJ_LOOP_SV = ["tests/test_serve.py::test_serve_in_a_running_event_loop_serves_and_an_interrupt_stops_it_and_frees_"
              "the_port"]
SJ_FAILED_SV = ["tests/test_serve.py::test_a_server_that_fails_to_start_frees_its_port"]
SJ_GO = [SJ + "a_stopped_train_lets_go_of_the_training_in_the_traceback_a_notebook_keeps"]
SJ_REQUEST = [SJ + "request_stop_stops_a_training_in_another_thread_with_its_checkpoint"]
SJ_LAST = [SJ + "a_ctrl_c_after_the_last_check_says_the_run_is_complete"]
SJ_OUT = ["tests/test_user_paths.py::test_an_out_that_holds_a_dataset_or_other_runs_is_refused"]
SJ_HELD = ["tests/test_compare.py::test_a_second_compare_into_a_folder_being_written_is_refused_before_its_measures"]
SJ_MADE = ["tests/test_compare.py::test_a_folder_made_for_a_refused_compare_is_removed_again"]
SJ_HELD_UP = "tests/test_user_paths.py::test_a_second_sample_or_interpolate_into_a_folder_being_written_is_refused"
SJ_IMPORT = ["tests/test_model.py::test_a_ctrl_c_while_the_optimizers_are_made_waits_for_them"]
SJ_PY = ["tests/test_user_paths.py::test_a_folder_holding_a_run_says_how_to_continue_it_in_python_too"]
SJ_DRY = ["tests/test_workflow.py::test_resume_auto_starts_the_run_once_and_continues_it_on_every_later_start"]
SJ_DEMO = ["tests/test_demo.py::test_make_demo_writers_of_one_folder_at_once_all_succeed_with_the_same_data"]
SJ_DL = ["tests/test_download.py::test_downloads_of_one_dataset_into_one_folder_at_once_take_turns"]
SJ_API = "tests/test_api_citizen.py::test_"
SJ_SUB = [SJ_API + "a_subclass_trains_with_its_own_loss_term_and_on_log_gets_every_row"]
SJ_FLAKY = [SJ_API + "an_on_log_that_fails_is_said_once_and_the_training_goes_on"]
SJ_EXTRA = [SJ_API + "extra_entries_cannot_replace_the_checkpoints_own"]
SJ_TYPES = [SJ_API + "the_builders_name_the_config_they_take_and_a_config_subclass_is_refused_for_its_fields"]
SJ_NOTHING_LEFT = [SJ + "a_stop_asked_of_a_run_with_nothing_left_to_train_passes_no_signal_on"]
SJ_AFTER_LAST = [SJ + "a_signal_after_the_last_check_goes_to_the_handler_it_replaced"]
SJ_SV_LOOP = SJ_LOOP_SV[0]

SK_ST = "tests/test_stop.py::test_"
SK_75 = [SK_ST + "a_second_training_into_a_run_folder_in_use_exits_75_and_a_bad_option_2"]
SK_DL = "tests/test_download.py::test_"
SK_CLS = ["tests/test_model_cls_cli.py"]
SK_G1 = ["tests/test_model.py::test_the_bicycle_step_runs_g_once_on_both_codes_where_that_is_the_same_function",
         "tests/test_model.py::test_g_once_on_both_codes_looks_at_gs_layers_not_the_config",
         "tests/test_model.py::test_train_step_equals_reference_order"]
SK_HALF = ["tests/test_norm_act.py::test_the_cpu_fallback_normalises_half_precision_in_float32"]
SK_INTERP = ["tests/test_kernel_plumbing.py::test_the_interpreter_is_what_triton_was_imported_with"]
SK_LAZY = "tests/test_optional_imports.py::test_"
CMP = "engine/compare.py"
SL_CMP = "tests/test_compare.py::test_"
SL_R = "tests/test_report.py::test_"
SL_NEWER = [REL + "a_resume_continues_from_a_checkpoint_newer_than_latest"]
SL_AGAIN = [REL + "resume_auto_starts_again_a_run_of_its_config_that_never_saved"]
SL_SKIP = [REL + "an_fp16_step_the_scaler_skipped_is_left_out_of_the_log_and_the_checkpoint"]
SL_IP = ["tests/test_interpolate.py::test_interpolate_errors"]
SL_SW = ["tests/test_sweep.py::test_an_option_given_at_its_default_is_the_protocol_of_one_left_out"]
SK_NA = "kernels/norm_act.py"

# session 52's review of a stopped sample's resume (SR), io.file_sha256 (FS), TempFiles.remove_stale (RS) and
# check_fallback_mode (FM): docs/mutation-engine.md, "Resumed samples, file digests, stale temp files and the
# fallback mode's check"
SR = "tests/test_sample_resume.py::test_"
SR_ALL = ["tests/test_sample_resume.py"]
SR_DAMAGED = [SR + "a_record_damaged_since_is_taken_for_none"]
SR_TR = ["tests/test_sample_torchrun.py::test_under_torchrun_a_stopped_sample_goes_on_where_it_stopped"]
FS_T = [REL + "file_sha256_is_the_digest_of_the_whole_file", "tests/test_download.py"]
RS_T = [REL + "only_temp_files_no_live_writer_can_own_are_stale",
        REL + "remove_stale_removes_every_killed_writes_temp_and_takes_one_gone_since_the_listing",
        REL + "a_write_in_progress_in_another_process_keeps_its_temp_file",
        SR + "an_image_whose_write_was_killed_is_not_taken_as_written"]
FM_T = ["tests/test_config.py::test_the_kernels_fallback_mode_is_read_before_a_run_starts"]

# session 53's hand-made mutants of its changes: DALI's draws from each sample's generator and its pass from a
# batch (DD), download model's check of a file already there (DM), train's refusal of an --out holding a report.html
# (RH), serve's SIGINT handler put in before its thread starts (SV), LOCAL_RANK beside a caller's group (LN), the
# kept measures that are not such measures (KM): docs/mutation-engine.md, "DALI's draws, a model already there, a
# page in --out, serve's handler, LOCAL_RANK and kept files of another kind"
DD_ALL = ["tests/test_pipelines.py", "tests/test_preprocessing.py",
          PE + "dali_keeps_the_crops_of_an_epoch_where_a_file_broke", PE + "decode_error_at_run_time",
          PE + "dali_keeps_no_pipeline_over_files_a_new_substitute_replaced"]
WF = "tests/test_workflow.py::test_"
DM_T = [WF + "download_model_returns_only_that_models_checkpoint_as_already_there",
        "tests/test_download.py::test_a_download_model_waits_for_another_of_the_same_model"]
PG_T = ["tests/test_user_paths.py::test_an_out_that_holds_a_dataset_or_other_runs_or_a_page_is_refused"]
SV_T = ["tests/test_serve.py::test_serve_in_a_script_event_loop_has_its_interrupt_handler_in_before_the_server_answers",
        "tests/test_serve.py::test_a_server_thread_that_cannot_start_is_raised_at_once_not_waited_for",
        "tests/test_serve.py::test_serve_in_a_running_event_loop_serves_and_an_interrupt_stops_it_and_frees_the_port"]
LN_T = ["tests/test_distributed.py::test_a_local_rank_that_cannot_be_beside_the_callers_own_group_is_one_line",
        "tests/test_distributed.py::test_under_torchrun_a_named_gpu_is_this_ranks_gpu"] + LAUNCH
KM_T = ["tests/test_evaluate_resume.py::test_kept_measures_damaged_since_are_measured_again_said_in_a_line"]
KM_NOTE = ["tests/test_evaluate_resume.py"]

# session 54's hand-made mutants of DALI's changes (05fd443..8058691): _recover's look behind its list's end, a random
# pass's pipeline let go, the epoch at the first batch, _stat/_seen, files read again, dont_use_mmap, _cause,
# none_decodes, an empty pass ending an earlier one (DS); evaluate's and compare's kept measures (_Kept.end, lost,
# kept_lost, outputs not finite, compare's .compare.json.partial/<i>/, cli's _kept(args, stop)) (EK):
# docs/mutation-pipelines.md and docs/mutation-engine.md, "session 54"
DS_T = ["tests/test_pipelines_errors.py", "tests/test_pipelines_formats.py", "tests/test_pipelines.py"]
EK_T = ["tests/test_evaluate_resume.py", "tests/test_compare.py"]

# session 53's hand-made mutants of sample's grouped writes (c28dcfe): pipelines.atomic.AtomicWrites (add, commit,
# _fsync, discard, _remove, _fsync_folder), _begin and _failed (atomic_write's code moved into them) (AG) and
# sample's use of it (AS): docs/mutation-engine.md, "sample's grouped writes"
AG_T = [REL + "atomic_writes_" + name for name in (
    "a_failed_fsync_waits_for_the_others_before_closing_their_files",
    "renames_no_file_before_every_fsync_returned_and_then_fsyncs_the_folder",
    "left_uncommitted_leave_nothing_also_of_a_write_still_running", "failures_name_the_file_and_rename_none_after_it",
    "a_ctrl_c_after_the_last_rename_is_raised_as_such", "add_after_the_group_closed_makes_nothing",
    "fsync_their_folders_once_each_and_name_the_folder_whose_fsync_failed",
    "write_through_a_link_and_return_the_names_given", "leave_no_file_open",
    "hold_no_descriptor_per_file_until_the_commit",
    "a_folder_removed_before_the_commit_is_named", "refuse_a_link_to_a_processs_stream")]
AS_T = [TCM + "sample_writes_an_inputs_images_at_once_and_none_after_one_that_failed",
        TCM + "the_images_folder_is_listed_once_a_call_not_at_each_file",
        TCM + "sample_makes_the_next_input_while_an_inputs_images_are_written_and_none_further"] + [
    SR + name for name in (
    "every_image_is_renamed_after_its_fsync_returned", "a_kill_between_an_inputs_renames_leaves_it_to_be_made_again",
    "an_input_stopped_part_way_through_its_images_is_made_again",
    "an_inputs_images_are_fsynced_several_at_once_by_threads_that_end_with_the_call",
    "ctrl_c_while_an_inputs_images_are_written_ends_their_writes_before_the_call_ends",
    "an_image_that_cannot_be_written_is_named_as_a_sample_image")]
AB_T = [REL + name for name in (
    "io_a_failed_write_names_the_file_the_reason_and_the_free_space",
    "a_failed_write_names_the_file_also_when_the_error_asked_for_is_oserror",
    "io_destinations_under_a_file_are_refused",
    "a_device_or_a_pipe_given_as_a_file_to_write_is_refused_and_left_as_it_was",
    "a_write_to_a_symbolic_link_goes_to_its_target_and_the_link_stays",
    "io_writes_create_folders_and_get_the_usual_permissions", "a_write_removes_its_own_names_temp_files_only")] + AG_T

# session 55's hand-made mutants of fd86537..081a269 (MQ): compare's kept measures by digest (kept_key, and
# runtime.weights_digest), Dist.agree_each and each rank's lost measures in rank 0's words (_Kept.failed_code,
# elsewhere, _LOST_ELSEWHERE, _lost_by_rank), holds_kept and the sweep's line after an error (_say_kept, its lost
# dict), the sweep's folder refused where it holds another's page (refuse_others_results' own_title, where, instead,
# _titled), TensorBoardLog opened at its first use and the trainer's begin: docs/mutation-engine.md, "session 55"
ER = "tests/test_evaluate_resume.py::test_"  # (TCP: test_compare.py's, above)
MQ_ORDER = [TCP + "a_stopped_compare_run_again_with_its_models_in_another_order_goes_on_from_each_ones_measures"]
MQ_LOADED = [TCP + "models_given_loaded_name_the_file_and_step_they_were_read_from"]
MQ_FEWER = [TCP + "a_compare_of_fewer_models_removes_the_measures_an_earlier_one_kept",
            TCP + "measures_kept_by_an_older_version_by_place_are_left_alone_then_removed"]
MQ_RANKS = [ER + "under_torchrun_rank_0_says_another_ranks_measures_lost"]
MQ_HOLDS = [ER + "a_folder_holds_kept_measures_where_a_file_of_them_is_in_it"]
MQ_SWEEP = [ER + "a_sweep_ended_by_another_error_says_once_where_the_measures_are_kept"]
MQ_OTHER = [ER + "a_sweep_ended_by_an_error_never_says_another_recipes_measures_are_kept"]
MQ_STOP = [ER + "a_stopped_sweep_goes_on_inside_the_checkpoint_it_stopped_in",
           ER + "a_stopped_sweep_whose_save_failed_says_what_is_lost"]
MQ_PAGE = ["tests/test_sweep.py::test_a_sweep_folder_holding_another_commands_results_or_the_users_page_is_refused_"
           "before_any_work"]
# (the tests written for the survivors: a config beside alike weights, rank 0's line, nothing kept in a folder that is
# there, the sweep's page told by its title, a log closed unopened)
MQ_CONFIG = [TCP + "models_given_loaded_of_the_same_weights_and_other_configs_keep_their_measures_apart"]
MQ_WORDS = [ER + "the_lost_measures_line_names_each_rank_whose_saves_failed"]
MQ_NONE = [ER + "a_sweep_ended_before_its_checkpoint_measured_anything_says_nothing_kept"]
MQ_TITLE = ["tests/test_sweep.py::test_an_earlier_sweeps_page_is_told_by_its_title_alone"]
MQ_UNOPENED = ["tests/test_report.py::test_a_tensorboard_log_never_written_to_closes_without_opening_an_event_file"]
MQ_TB = ["tests/test_report.py::test_" + name for name in (
    "a_trainer_opens_its_event_file_as_it_trains_not_as_it_is_made", "a_run_that_raises_closes_its_event_file",
    "tensorboard_on_resume_hides_the_steps_logged_again")]

MUTANTS = [
    # ModelConfig: ndf against num_Ds
    ('CF01', CFG, 'if round(self.ndf / 2 ** i) < 1), None)',
     'if self.ndf // 2 ** i < 1), None)', CONFIG),
    ('CF02', CFG, '        if multi and empty is not None:\n',
     '        if empty is not None:\n', CONFIG),
    ('CF03', CFG, 'empty = next((i for i in range(self.num_Ds) if',
     'empty = next((i for i in range(self.num_Ds - 1) if', CONFIG),
    ('CF04', CFG, 'fits = next(n for n in range(self.ndf + 1, 2 * last + 1) if round(n / last) >= 1)',
     'fits = next(n for n in range(self.ndf + 1, 2 * last + 1) if n / last >= 1)', CONFIG),
    # TrainConfig: lambda_ms with nz 0, VARIANT_TERMS
    ('CF05', CFG, 'if self.model.nz == 0 and self.lambda_ms > 0:',
     'if self.lambda_ms > 0:', CONFIG),
    ('CF06', CFG, 'if self.model.nz == 0 and self.lambda_ms > 0:',
     'if self.model.nz == 0 and self.lambda_ms >= 0:', CONFIG),
    ('CF07', CFG, '"clr": ("lambda_GAN", "lambda_z", "lambda_ms"),',
     '"clr": ("lambda_GAN", "lambda_z"),', CONFIG),
    ('CF08', CFG, '"cae": ("lambda_L1", "lambda_GAN", "lambda_ms"),',
     '"cae": ("lambda_L1", "lambda_GAN", "lambda_kl", "lambda_ms"),', CONFIG),
    ('CF09', CFG, 'if not any(getattr(self, n) > 0 for n in terms):',
     'if not all(getattr(self, n) > 0 for n in terms):', CONFIG),
    # use_same_D: D learns from the random branch whatever lambda_GAN2
    ('MD01', M, 'if cfg.lambda_GAN2 > 0 or cfg.model.use_same_D:',
     'if cfg.lambda_GAN2 > 0 or self.D2 is None:', SAME_D),
    ('MD02', M, 'if cfg.lambda_GAN2 > 0 or cfg.model.use_same_D:',
     'if cfg.lambda_GAN2 > 0 and cfg.model.use_same_D:', SAME_D),
    # import-official: where a file of another tensor count parts from ours
    ('OF01', OF, '        if v_t.shape != v_o.shape:\n            return f"the file\'s',
     '        if k_t != k_o:\n            return f"the file\'s', PARTING),
    ('OF02', OF, 'k_o, v_o = ours[len(theirs)]',
     'k_o, v_o = ours[len(theirs) - 1]', PARTING),
    ('OF03', OF, 'k_t, v_t = theirs[len(ours)]',
     'k_t, v_t = theirs[-1]', PARTING),
    # check_writable: a destination that is a file
    ('IO01', IO, '    if folder.is_file():  # mkdir',
     '    if not folder.is_dir():  # mkdir', WRITABLE),
    # write_report: no run folder
    ('RP01', R, '    if not run.is_dir():  # a mistyped folder',
     '    if not run.exists():  # a mistyped folder', REPORT),
    ('RP02', R, 'not a run folder (the --out of a training)" if run.exists()',
     'not a run folder (the --out of a training)" if not run.exists()', REPORT),
    # download: what to fetch by hand
    ('DL01', DL, 'f"fetch {url} elsewhere and extract it',
     'f"fetch {address} elsewhere and extract it', BY_HAND),
    ('DL02', DL, 'so that {target} holds its train/',
     'so that {dir} holds its train/', BY_HAND),
    ('DL03', DL, '--E {files[\'E\']} --out {shlex.quote(str(out))}',
     '--E {files[\'E\']} --out {out}', BY_HAND),
    ('DL04', DL, 'f"--preset {name} --G {files[\'G\']} --E {files[\'E\']}',
     'f"--preset {name} --G {files[\'G\']} --E {files[\'G\']}', BY_HAND),
    # load_checkpoint: eval mode for inference
    ('CK01', CK, '    if not training:  # model.generate()',
     '    if training:  # model.generate()', EVAL_MODE),
    ('CK02', CK, "running statistics\n        model.eval()",
     "running statistics\n        model.G.eval()", EVAL_MODE),
    # the training GPU's generator
    ('CK03', CK, 'state["cuda"] = torch.cuda.get_rng_state(device)',
     'state["cuda"] = torch.cuda.get_rng_state()', GPU_RNG),
    ('CK04', CK, 'if torch.device(device).type == "cuda":',
     'if torch.cuda.is_available():', GPU_RNG),
    ('CK05', CK, 'cuda = cuda[device.index or 0] if',
     'cuda = cuda[0] if', GPU_RNG),
    ('CK06', CK, '(device.index or 0) < len(cuda) else None',
     '(device.index or 0) <= len(cuda) else None', GPU_RNG),
    ('CK07', CK, 'torch.cuda.set_rng_state(cuda, device)',
     'torch.cuda.set_rng_state(cuda)', GPU_RNG),
    # a run resumed from another checkpoint makes it latest.pt
    ('TR01', T, 'if self.resume_path.resolve() != self.ckpt_path.resolve():',
     'if self.resume_path.resolve() == self.ckpt_path.resolve():', GONE_BACK),
    ('TR02', T, 'atomic_write(self.ckpt_path, lambda f: shutil.copyfileobj(src, f)',
     'atomic_write(self.resume_path, lambda f: shutil.copyfileobj(src, f)', GONE_BACK),
    # main_decides around save, sample and the log line (two gloo ranks: slow)
    ('TR03', T, '        self.dist.main_decides(write)\n        # Every rank\'s record',
     '        write() if self.main else None\n        # Every rank\'s record', FULL_CKPT),
    ('TR04', T, '        self.dist.main_decides(draw)\n',
     '        draw() if self.main else None\n', FULL_GRID),
    ('TR05', T, '        self.dist.main_decides(write)  # rank 0\'s failure stops every rank (see save)',
     '        write() if self.main else None  # rank 0\'s failure', FULL_LOG),
    # latest.pt written once at the end
    ('TR06', T, '            if path is None:\n                self.latest_written = self.step',
     '            if True:\n                self.latest_written = self.step', CADENCE),
    ('TR07', T, 'if self.latest_written != self.step or skipped is not None:',
     'if self.saved_step != self.step or skipped is not None:', CADENCE),
    # a stop during the owed evaluation trains no step
    ('TR08', T, '                stop = self.validate(owed_only=True)',
     '                self.validate(owed_only=True)',
     OWED + ["tests/test_validation.py::test_under_torchrun_a_stop_during_an_evaluation_stops_at_its_step_as_"
             "one_process_does"]),
    # the mid-run data error
    ('TR09', T, 'return f"the last good checkpoint is {self.saved_path} (step {self.saved_step})"',
     'return f"the last good checkpoint is {self.ckpt_path} (step {self.saved_step})"', BROKEN),
    ('TR10', T, '("" if self.cfg.data.skip_bad else f" (with --skip_bad',
     '("" if not self.cfg.data.skip_bad else f" (with --skip_bad', BROKEN),
    ('TR11', T, 'training stopped at step {self.step + 1} (epoch {self.epoch + 1}) on its data"',
     'training stopped at step {self.step} (epoch {self.epoch + 1}) on its data"', BROKEN),
    # DALI: each batch's file sizes against the checks' rules
    ('DA01', DA, 'key = tuple(int(v) for x in hw for v in x[j])',
     'key = tuple(int(v) for x in hw for v in x[0])', DALI),
    ('DA02', DA, 'sizes = {path: (int(x[j][1]), int(x[j][0]))',
     'sizes = {path: (int(x[j][0]), int(x[j][1]))', DALI),
    ('DA03', DA, '                a, shapes = img, shapes + [b_shape]\n',
     '                a = img\n', DALI),
    ('DA04', DA, 'for path, x in zip((sample.path, sample.b_path), hw)}',
     'for path, x in zip((sample.path, sample.path), hw)}', DALI),
    ('DA05', DA, '                        images = 1 if self.layout == "single" else 2\n',
     '                        images = 2\n', DALI),
    # a missing split beside others
    ('FI01', FI, '    if not (root / phase).is_dir() and (splits := sorted(',
     '    if (splits := sorted(', SPLITS),
    ('FI02', FI, 'is_dir() and (splits := sorted(d for d in _SPLITS if (root / d).is_dir())):',
     'is_dir() and (splits := sorted(d for d in _SPLITS if _has_images(root / d))):', SPLITS),
    # a held-out split without B
    ('NB01', T, 'B = torch.cat([b["B"] for b in rows]).to(self.device) if "B" in rows[0] else None',
     'B = torch.cat([b["B" if "B" in b else "A"] for b in rows]).to(self.device)', NO_B),
    ('NB02', EV, 'self.has_B = loader.layout != "single"',
     'self.has_B = self.layout != "single"', NO_B),
    ('NB03', T, 'if cfg.keep_best == "encoded_l1" and not ev.has_B:',
     'if cfg.keep_best == "encoded_l1" and ev.layout == "single":', NO_B),
    # -- the next session's (6621da3..ea00c07) --
    # interpolate: refs, seed and segments where they make no code; their defaults; too few inputs without refs
    ('IP01', IP, 'if refs is not None and path != "encoded":',
     'if refs is not None and path == "encoded":', INT),
    ('IP02', IP, 'if seed is not None and path == "encoded":',
     'if seed is not None and path == "random":', INT),
    ('IP03', IP, 'if seed is not None and path == "encoded":',
     'if seed and path == "encoded":', INT),
    ('IP04', IP, 'if segments is not None and refs is not None:',
     'if segments is not None and path == "encoded":', INT),
    ('IP05', IP, 'segments, seed = 5 if segments is None else segments, 50 if seed is None else seed',
     'segments, seed = 4 if segments is None else segments, 50 if seed is None else seed', INT),
    ('IP06', IP, 'segments, seed = 5 if segments is None else segments, 50 if seed is None else seed',
     'segments, seed = 5 if segments is None else segments, 0 if seed is None else seed', INT),
    ('IP07', IP, 'if refs is None and len(listed) < len(chosen):',
     'if refs is None and len(listed) <= len(chosen):', INT),
    ('IP08', IP, 'if refs is None and len(listed) < len(chosen):',
     'if len(listed) < len(chosen):', INT),
    ('IP09', IP, 'fewer = (f"segments={len(listed) - 1} or fewer, or refs" if len(listed) > 1',
     'fewer = (f"segments={len(listed)} or fewer, or refs" if len(listed) > 1', INT),
    ('IP10', IP, 'fewer = (f"segments={len(listed) - 1} or fewer, or refs" if len(listed) > 1',
     'fewer = (f"segments={len(listed) - 1} or fewer, or refs" if len(listed) >= 1', INT),
    ('IP11', IP, '_check_references(loader.layout, listed,', '_check_references(layout, listed,', INT),
    # interpolate: each rank reads its share (rank 0 the references too), a file broken since the checks
    ('IS01', IP, '        total = min(num, len(listed))\n',
     '        total = num\n', INT),
    ('IS02', IP, 'wanted = {*range(*shard_range(total, dist.rank, dist.world)),',
     'wanted = {*range(*shard_range(total, 0, dist.world)),', INT),
    ('IS03', IP, '*(chosen if path == "encoded" and dist.main\n',
     '*(chosen if path == "encoded"\n', INT),
    ('IS04', IP, 'loader.set_epoch(0, min(wanted))',
     'loader.set_epoch(0, 0)', INT),
    ('IS05', IP, 'zip(range(min(wanted), max(wanted) + 1), loader)',
     'zip(range(min(wanted), max(wanted)), loader)', INT),
    ('IS06', IP, 'if i in wanted and batch["paths"][0] == listed[i].path:',
     'if i in wanted:', INT),
    ('IS07', IP, 'if i in wanted and batch["paths"][0] == listed[i].path:',
     'if batch["paths"][0] == listed[i].path:', INT),
    ('IS08', IP, 'if path == "encoded" and dist.main and (lost :=',
     'if False and (lost :=', INT),
    ('IS09', IP, '        if i not in read:  # (broken since the checks: left out)\n            return None\n',
     '', INT),
    ('IS11', IP, 'read=read, total=total,', 'read=read, total=num,', INT),
    # inference_data: a --phase that is not a folder of the dataset folder
    ('PH01', RT, 'if phase and (Path(phase).is_absolute() or not Path(phase).parts or',
     'if phase and (not Path(phase).parts or', PHASE),
    ('PH02', RT, 'if phase and (Path(phase).is_absolute() or not Path(phase).parts or',
     'if phase and (Path(phase).is_absolute() or', PHASE),
    ('PH03', RT, 'or ".." in Path(phase).parts):',
     'or ".." in Path(phase).parts[:1]):', PHASE),
    # with_data_settings: a --load_size or --crop_size the preprocess does not use (the rule now
    # config.refuse_unused_sizes, which train's --load_size shares: CL03-CL05)
    ('LS01', CFG, 'if value is not None and preprocess not in modes:',
     'if value is not None and preprocess in modes:', SIZES),
    ('LS02', CFG, 'if value is not None and preprocess not in modes:',
     'if preprocess not in modes:', SIZES),
    ('LS03', CFG, '"load_size": (RESIZING, "resize to")',
     '"load_size": (CROPPING, "resize to")', SIZES),
    ('LS04', CFG, '"crop_size": (CROPPING, "crop to")',
     '"crop_size": (RESIZING, "crop to")', SIZES),
    ('LS05', RT, '"as given" if preprocess else "as the model was trained"',
     '"as the model was trained" if preprocess else "as given"', SIZES),
    ('LS06', SP, 'RESIZING = ("resize_and_crop", "scale_width", "scale_width_and_crop")',
     'RESIZING = ("resize_and_crop", "scale_width")', SIZES),
    # interpolate's options without a default, so that the refusals above can tell whether they were given
    ('CL01', CLI, 'p.add_argument("--segments", type=_at_least(1), help=',
     'p.add_argument("--segments", type=_at_least(1), default=5, help=', INT),
    ('CL02', CLI, 'p.add_argument("--seed", type=_SEED, help="seed of --path random',
     'p.add_argument("--seed", type=_SEED, default=50, help="seed of --path random', INT),
    # compare's and the sweep's notes: each encoded '-' its row's recorded reason
    ('EN01', R, 'else NO_ENCODED.get(r.get("encoded_missing"), NO_ENCODED_EITHER) if k in ENCODED',
     'else NO_ENCODED_EITHER if k in ENCODED', NOTES),
    ('EN02', R, 'else NO_ENCODED.get(r.get("encoded_missing"), NO_ENCODED_EITHER) if k in ENCODED',
     'else NO_ENCODED.get(r.get("encoded_missing"), NO_ENCODER) if k in ENCODED', NOTES),
    # the layers an impl=auto model runs (model.layer_impl) and the trainer's note of them
    ('LI01', M, 'return "auto" if training and (cfg.cuda_graph or cfg.compile != "off") else "ref"',
     'return "auto" if (cfg.cuda_graph or cfg.compile != "off") else "ref"', LAYER_IMPL),
    ('LI02', M, 'if impl != "auto" or device is None or torch.device(device).type != "cuda":',
     'if impl != "auto" or device is None:', LAYER_IMPL),
    ('LI03', M, 'm = dataclasses.replace(m, impl=self.impl) if self.impl != m.impl else m', 'm = m', LAYER_IMPL),
    ('LI04', T, 'if self.model.impl != cfg.model.impl:', 'if self.model.impl == "ref":', IMPL_NOTE),
    # a model without z: train's --eval_samples and evaluate's --n_samples refused before anything is built
    ('NZ01', CLI, 'is not None and n > 1 and not cfg.model.nz:', 'is not None and n > 1:', NZ_TRAIN),
    ('NZ02', CLI, '        d.main_decides(refuse)\n', '', NZ_EVAL),
    ('UA01', EX, '    if is_checkpoint(out):', '    if False:', OVER_EXPORT),
    ('UA02', CK, '        return Path(path).is_file() and peek_checkpoint(path) == ()',
     '        return Path(path).is_file() and peek_checkpoint(path, "imported") == (None,)', OVER_EXPORT + OVER_JSON),
    ('UA03', CLI, '        refuse_checkpoint_json(args.json, "eval.json")', '        pass', OVER_JSON),
    ('UA04', SW, '            refuse_checkpoint_json(json_path, "sweep.json", "json_path")', '            pass',
     OVER_JSON),
    ('UA05', CLI, 'if found is not None and found["imported"] is None and not old_import(found):',
     'if found is not None and not old_import(found):', OVER_IMPORT),
    ('UA06', DM, 'and not (out / _WRITING).is_file() and any(', 'and any(', DEMO_INTO),
    ('UA07', DM, 'not f.name.endswith(".tmp") for f in out.iterdir()):', 'False for f in out.iterdir()):', DEMO_INTO),
    ('UA08', CK, '    if folder.name.startswith(ABANDONED):\n        folder = folder.parent\n    return folder.parent',
     '    if folder.name == ABANDONED:\n        folder = folder.parent\n    return folder.parent',
     SET_ASIDE + DATA_MOVED + RESUME_NOTE),
    ('UA09', T, '        elif BEST in moved and self.cfg.keep_best:', '        elif False:', BACK_BEST),
    ('UA10', T, 'if row is None or row.get("best") != key or', 'if row is None or', BACK_BEST),
    # the train command's review: a --load_size its preprocess does not use, refused only where given
    ('CL03', CLI, '    refuse_unused_sizes(cfg.data.preprocess, {"load_size": given.get("load_size")},',
     '    refuse_unused_sizes(cfg.data.preprocess, {"load_size": None},', TRAIN_SIZES),
    ('CL04', CLI, '    refuse_unused_sizes(cfg.data.preprocess, {"load_size": given.get("load_size")},',
     '    refuse_unused_sizes(cfg.data.preprocess, {"load_size": cfg.data.load_size},', TRAIN_SIZES),
    ('CL05', CLI, '"as given" if "preprocess" in given else whose)', 'whose)', TRAIN_SIZES),
    # a crop larger than the image: "after resize" said only where the preprocess resizes
    ('CL06', SP, '            if self.preprocess == "crop":  # the crop is taken',
     '            if False:  # the crop is taken', CROP_WORDS),
    ('CL07', SP, '            if self.preprocess == "crop":  # the crop is taken',
     '            if self.preprocess != "resize_and_crop":  # the crop is taken', CROP_WORDS),
    # train --dry-run: the run's checks of its folder and of the checkpoint it resumes or starts from (check_start)
    ('CL08', CLI, '    cfg = check_start(cfg, resume=_resume_told(args),',
     '    cfg = cfg or check_start(cfg, resume=_resume_told(args),', DRY),  # (a config is true: never checked)
    ('CL09', T, '    restarting = _check_run_folder(run_dir, resume_path, cfg if _auto(resume) else None)\n',
     '    restarting = False\n', DRY),
    # (CL10-CL13: check_start's lines, since moved into _check_starting_point, which the Trainer shares)
    ('CL10', T, '        state = _read_resumed(resume_path, run_dir / "checkpoints" / LATEST)\n        _check_resumed(',
     '        state = torch.load(resume_path, weights_only=True)\n        _check_resumed(', DRY),
    ('CL11', T, '        _check_resumed(state, cfg, resume_path, run_dir, world)\n        step = state["step"]',
     '        step = state["step"]', DRY),
    ('CL12', T, '        step = state["step"]\n    elif init_path', '        step = 0\n    elif init_path', DRY),
    ('CL13', T, '        _check_start_from(state, cfg, init_path)\n', '        pass\n', DRY),
    ('CL14', T, '    if cfg.max_steps is not None:  # (without it', '    if False:  # (without it', DRY),
    # the networks a training has: one rule (TrainConfig.trained_networks) for the model and the checks
    ('CL15', CFG, 'own_d2 = self.variant == "bicycle" and self.lambda_GAN2 > 0 and not self.model.use_same_D',
     'own_d2 = self.variant == "bicycle" and self.lambda_GAN2 > 0', SAME_D),
    ('CL16', T, '    taken = [n for n in cfg.trained_networks if not (fresh_d and n in ("D", "D2"))]',
     '    taken = list(cfg.trained_networks)', FRESH_D),
    # the Python API's audit: the model's state_dict, inputs and config, a run folder read or resumed, the
    # arguments of evaluate, compare, export and make_loader
    ('PA01', M, '        if self.G_ema is not None:\n            self.G_ema.state_dict(destination=',
     '        if False:\n            self.G_ema.state_dict(destination=', STATE),
    ('PA02', M, 'persistent=cfg.ema > 0)', 'persistent=False)', STATE),
    ('PA03', M, '            missing_keys += [ema + k for k in result.missing_keys]\n', '', STATE),
    ('PA04', CK, '    path = find_checkpoint(path)  # a run folder was', '    path = Path(path)  # a run folder was',
     [REL + "load_checkpoint_takes_a_run_folder_as_the_commands_do"]),
    ('PA05', T, 'return find_checkpoint(resume) if Path(resume).is_dir() else Path(resume)',
     'return Path(resume)', [LOOP + "resume_from_a_run_folder_continues_from_its_latest_checkpoint"]),
    ('PA06', EV, '        check_int("batch_size", batch_size, 1)\n', '', COUNTS),
    ('PA07', CP, 'one = isinstance(models, (str, os.PathLike, torch.nn.Module))',
     'one = isinstance(models, (str, os.PathLike))', ["tests/test_compare.py::test_one_path_or_model_given_from_"
                                                      "python_is_one_model"]),
    ('PA08', EX, 'or not isinstance(value, int) or value < 1):', 'or not isinstance(value, int) or value < 0):',
     ["tests/test_export.py::test_a_side_that_is_no_positive_integer_is_refused_by_name"]),
    ('PA09', M, '        if not self.optimizers:  # it ran the G phase',
     '        if not self.training:  # it ran the G phase',
     [MT + "train_step_of_a_model_built_for_inference_says_how_to_build_one_that_trains"]),
    ('PA10', M, '        return x.to(weight.device, weight.dtype)', '        return x.to(weight.device)', INPUTS),
    ('PA11', M, 'x.is_floating_point() and x.shape[1] == channels):', 'x.is_floating_point()):', FORM),
    ('PA12', M, '        A = batch["A"].to(self.device, dtype, non_blocking=True)',
     '        A = batch["A"].to(self.device, non_blocking=True)', INPUTS),
    ('PA13', M, '    @torch.enable_grad()  # (inside', '    # (inside', INPUTS),
    ('PA14', M, '        return G(A, z.to(A.device))', '        return G(A, z)', INPUTS),
    ('PA15', M, '            raise ConfigError(f"this model (variant {self.cfg.variant}) has no trained encoder")',
     '            raise RuntimeError(f"this model (variant {self.cfg.variant}) has no trained encoder")', FORM),
    ('PA16', RT, '    check_model_source(model)\n    if isinstance(model, BicycleGAN):',
     '    if isinstance(model, BicycleGAN):', NEITHER),
    ('PA17', CK, '    if not isinstance(path, (str, os.PathLike)):  # (None was', '    if False:  # (None was',
     NEITHER),
    ('PA18', CP, '            check_model_source(m, f"models[{i}]")', '            pass', NEITHER),
    ('PA19', SW, '    if not isinstance(path, (str, os.PathLike)):  # (a model object',
     '    if False:  # (a model object', NEITHER),
    ('PA20', LO, '("skip_bad", skip_bad, False), ', '', LOADER_ARGS),
    ('PA21', RT, 'skip_bad=skip_bad)  # (bool("no") was True)', 'skip_bad=bool(skip_bad))  # (bool("no") was True)',
     COUNTS),
    ('PA22', LO, '    if not isinstance(root, (str, os.PathLike)):  # (None was', '    if root is None:  # (None was',
     ["tests/test_pipelines_formats.py::test_a_root_that_is_no_path_is_named"]),
    ('PA23', SP, 'or 3 (RGB), got {getattr(self, name)!r}")', 'or 3 (RGB), got {getattr(self, name)}")', LOADER_ARGS),
    ('PA24', FI, "'is a file, not a folder' if root.exists() else", "'is a file, not a folder' if root.is_dir() else",
     ["tests/test_pipelines_errors.py::test_missing_and_empty_folders"]),
    ('PA25', M, 'self.cfg = cfg = TrainConfig.own_copy(cfg, "BicycleGAN")',
     'self.cfg = cfg = TrainConfig.given(cfg, "BicycleGAN")',
     [MT + "a_model_keeps_its_own_config_checked_whatever_becomes_of_the_callers"]),
    ('PA26', T, '        self.model.cfg = cfg  # the run\'s own copy', '        pass  # the run\'s own copy',
     ["tests/test_user_paths.py::test_init_from_starts_a_new_run_from_the_weights_of_a_trained_checkpoint"]),
    # The files' order (PO): the reference's, its full paths sorted with their extensions.
    ('PO01', FI, 'samples = [Sample(p) for p in sorted(p for paths in listed[0].values() for p in paths)]',
     'samples = [Sample(p) for _, paths in sorted(listed[0].items()) for p in paths]', ORDER),
    ('PO02', FI, 'samples = [Sample(p) for p in sorted(p for paths in listed[0].values() for p in paths)]',
     'samples = [Sample(p) for p in sorted((p for paths in listed[0].values() for p in paths), '
     'key=os.path.basename)]', ORDER),
    # the caller's generators and device settings (LH01-LH12)
    ('LH01', T, '                set_rng_state(self._rng, self.device)\n', '', OWN_DRAWS),
    ('LH02', T, 'with device_settings(self.device), rng_kept(self.device):\n                    self._setup',
     'with device_settings(self.device):\n                    self._setup', [f"{LEAVES}[train]"]),
    ('LH03', T, 'with self._stop, self._said, device_settings(self.device), rng_kept(self.device):',
     'with self._stop, self._said, device_settings(self.device):', [f"{LEAVES}[train]"]),
    ('LH04', CK, '    torch.default_generator.manual_seed(seed)\n', '', OWN_DRAWS),
    ('LH05', CK, '        torch.cuda.default_generators[index].manual_seed(seed)',
     '        torch.cuda.default_generators[0].manual_seed(seed)', GPUS_SEEDED),
    ('LH06', CK, '    finally:\n        set_rng_state(state, device)', '    finally:\n        pass',
     [f"{LEAVES}[train]"]),
    ('LH07', CK, '    with torch.random.fork_rng(devices=[]):\n        model = BicycleGAN(',
     '    with torch.no_grad():\n        model = BicycleGAN(', [f"{LEAVES}[load_checkpoint]"]),
    ('LH08', EX, '    with torch.random.fork_rng(devices=[]):', '    with torch.no_grad():',
     [f"{LEAVES}[export_generator]"]),
    ('LH09', FID_FILE, '    with torch.random.fork_rng(devices=[]):', '    with torch.no_grad():', METRIC_NETS),
    ('LH12', LPIPS_FILE, '    with torch.random.fork_rng(devices=[]):', '    with torch.no_grad():', METRIC_NETS),
    # switches: True or False alone (LH13-LH26)
    ('LH13', CFG, '    if not isinstance(value, (bool, np.bool_)):',
     '    if not isinstance(value, (bool, np.bool_, str)):', CHECK_BOOL),
    ('LH14', CFG, '    return bool(value)\n', '    return value\n', NUMPY_BOOLS),
    ('LH15', CFG, '    if optional and value is None:\n        return None',
     '    if value is None:\n        return None', CHECK_BOOL),
    ('LH16', CFG, '            setattr(obj, f.name, check_bool(f.name, getattr(obj, f.name)))',
     '            check_bool(f.name, getattr(obj, f.name))', NUMPY_BOOLS),
    ('LH17', T, '        resume = check_bool("resume", resume)  #', '        pass  #', [f"{REFUSED}[0-train-resume]"]),
    ('LH18', T, 'check_bool("tensorboard", tensorboard, optional=True)', 'tensorboard',
     [f"{REFUSED}[no-Trainer-tensorboard]"]),
    ('LH19', T, '    evaluate = check_bool("evaluate", evaluate)\n', '', [f"{REFUSED}[no-train-evaluate]"]),
    ('LH20', SA, 'check_bool("spread", spread)', 'spread', [f"{REFUSED}[no-sample-spread]"]),
    ('LH21', EV, '    progress = check_bool("progress", progress)  #', '    pass  #',
     [f"{REFUSED}[no-evaluate-progress]"]),
    ('LH22', IP, 'mp4, progress = check_bool("mp4", mp4, optional=True),', 'mp4, progress = mp4,',
     [f"{REFUSED}[0-interpolate-mp4]"]),
    ('LH23', SW, '    reuse = check_bool("reuse", reuse)\n', '', [f"{REFUSED}[no-evaluate_checkpoints-reuse]"]),
    ('LH24', EX, '    verify = check_bool("verify", verify)\n', '', [f"{REFUSED}[no-export_generator-verify]"]),
    ('LH25', M, '        training = check_bool("training", training)\n', '', [f"{REFUSED}[no-BicycleGAN-training]"]),
    ('LH26', DL, '    testset, progress = check_bool("testset", testset),', '    testset, progress = testset,',
     [f"{REFUSED}[0-download_dataset-testset]"]),
    ('LH10', RT, '        torch.backends.cudnn.benchmark = benchmark\n', '', SETTINGS),
    ('LH11', RT, '        torch.cuda.set_device(current)\n', '', SETTINGS),
    # loaders closed (LH27-LH29)
    ('LH27', "pipelines/base.py", '            self.closed = True\n            self._free()',
     '            self.closed = True', CLOSED),
    ('LH28', "pipelines/cpu_loader.py", '            it._shutdown_workers()  #', '            pass  #', CLOSED),
    ('LH29', T, '            self.loader.close()  # its workers end with the training', '            pass  #',
     NO_WORKER_LEFT),
    # train --dry-run: the rest of what the run refuses before its first step (check_start)
    ('CX01', T, '    device = pick_device(cfg.device, local_rank, world)',
     '    device = torch.device("cpu") or pick_device(cfg.device, local_rank, world)', DRY_ALL),
    ('CX02', T, '    check_runnable(cfg, device)\n    run_dir = Path(cfg.out)', '    run_dir = Path(cfg.out)', DRY_ALL),
    ('CX03', T, '    if cfg.data.dataroot is not None:\n        check_data_root(cfg)\n    # (the Trainer',
     '    # (the Trainer', DRY_ALL),
    ('CX04', T, '    _check_not_in_use(run_dir)\n', '', DRY_ALL),
    ('CX05', T, '    except BlockingIOError:\n        raise _in_use(run_dir) from None',
     '    except BlockingIOError:\n        pass', DRY_ALL),
    ('CX06', T, '    with checks_unsaved(), _training_loader(',
     '    return cfg\n    with checks_unsaved(), _training_loader(', DRY_ALL),
    ('CX07', FI, 'if self.path is None or not self.new or not _saving_checks:', 'if self.path is None or not self.new:',
     DRY_ALL),
    # (CX08-CX10: check_start's lines, since moved into _check_data_fits, which the Trainer shares)
    ('CX08', T, '    if step:\n        _check_same_data(', '    if False:\n        _check_same_data(', DRY_ALL),
    ('CX09', T, '    _check_schedule(cfg, _total_steps(cfg, len(loader)), len(loader), step, world)\n', '', DRY_ALL),
    ('CX10', T, '    _check_unet_sizes(cfg, loader)\n\n', '\n', DRY_ALL),
    ('CX11', T, '        if rank == 0:\n            _grid_loader(', '        if False:\n            _grid_loader(',
     DRY_ALL),
    ('CX12', T, '        if cfg.eval_every:\n            rows, best = ', '        if False:\n            rows, best = ',
     DRY_ALL),
    # (CX13, CX14: check_start's lines, since moved into _evaluations_kept, which the Trainer shares)
    ('CX13', T, 'best_path.exists() and best_path not in _later_checkpoints(', 'best_path.exists() and True or (',
     DRY_ALL),
    ('CX14', T, '    return [row for row in _eval_rows(run_dir) if row["step"] <= step], best',
     '    return _eval_rows(run_dir), best', DRY_ALL),
    ('CX15', T, '    if _idle_holder(path) is not None or fcntl is None:\n        return\n    try:\n',
     '    if fcntl is None:\n        return\n    try:\n', DRY_ALL),
    # import-official: a --load_size its preprocess does not use, refused as train refuses it
    ('CX16', CLI, '{"load_size": data.get("load_size")}, "as given" if "preprocess" in data',
     '{"load_size": None}, "as given" if "preprocess" in data', IMPORT_SIZES),
    ('CX17', CLI, '{"load_size": data.get("load_size")}, "as given" if "preprocess" in data',
     '{"load_size": data_cfg.load_size}, "as given" if "preprocess" in data', IMPORT_SIZES),
    ('CX18', CLI, '"as given" if "preprocess" in data\n', '"as given" if False\n', IMPORT_SIZES),
    # sample_columns: a ground truth B that is not of A's rows, said so
    ('CX19', IM, '        if not torch.is_tensor(B) or tuple(B.shape) != want:',
     '        if not torch.is_tensor(B) or B.shape[0] != N:', COLUMNS),
    ('CX20', IM, '        want = (N, model.cfg.model.output_nc, H, W)', '        want = (N, B.shape[1], H, W)',
     COLUMNS),
    ('CX21', IM, 'got = tuple(B.shape) if torch.is_tensor(B) else type(B).__name__',
     'got = tuple(B.shape) if torch.is_tensor(B) else B', COLUMNS),
    # the inference commands' loaders closed (LC01-LC04)
    ('LC01', SA, 'loader = owned.enter_context(build_loader(net_in,', 'loader = (build_loader(net_in,',
     INFERENCE_WORKERS),
    ('LC02', IP, '        with build_loader(net_in, data, root, ph, device=m.device, batch_size=1,\n'
                 '                          shuffle=False, augment=False, layout=lay) as loader:',
     '        with __import__("contextlib").nullcontext(build_loader(net_in, data, root, ph, device=m.device,\n'
     '                          batch_size=1, shuffle=False, augment=False, layout=lay)) as loader:',
     INFERENCE_WORKERS),
    ('LC03', EV, 'loader = owned.enter_context(self._loader()) if len(share)', 'loader = self._loader() if len(share)',
     INFERENCE_WORKERS),
    ('LC04', EV, 'loader.close()  # at once: its checks', 'pass  # at once: its checks', INFERENCE_WORKERS),
    # the CLI's advice as a Python caller spells it (LC05)
    ('LC05', CK, "{folder / 'epoch_N.pt'} (in Python", "{folder / 'epoch_N'} (in Python", EPOCH_FILE),
    # nothing litters: check_writable makes nothing; what a failed start made goes again
    ('NL01', IO, '        top = missing_top(folder.absolute())  #',
     '        folder.mkdir(parents=True, exist_ok=True)\n        top = missing_top(folder.absolute())  #', AFTER_CHECK),
    ('NL02', IO, '        if top is not None and top.is_symlink():  # a dangling link',
     '        if False:  # a dangling link',
     [LITTER + "check_writable_makes_nothing_and_probes_the_deepest_existing_folder"]),
    ('NL03', IO, '        with tempfile.TemporaryFile(dir=folder if top is None else top.parent):',
     '        with tempfile.TemporaryFile():', AFTER_CHECK),
    ('NL04', IO, '    return next((f for f in reversed([folder, *folder.parents]) if not f.exists()), None)',
     '    return None if folder.exists() else folder', TRAIN_MADE),
    ('NL05', IO, '        if f == top:\n            return', '        if False:\n            return', TRAIN_MADE),
    ('NL06', T, '            remove_made(self.run_dir, self._made_folder)', '            pass', TRAIN_MADE),
    ('NL07', EX, '            remove_made(out.parent, made)', '            pass', EXPORT_MADE),
    ('NL08', DL, '            part.parent.mkdir(parents=True, exist_ok=True)  # (check_writable',
     '            pass  # (check_writable', DOWNLOADED),
    # write_report: a folder that is no run's
    ('NL20', R, 'status is None and not any((run / name).is_file() for name in RUN_MARKERS):',
     'status is None and not all((run / name).is_file() for name in RUN_MARKERS):', REPORT),
    ('NL21', R, 'RUN_MARKERS = ("config.json", "log.jsonl")', 'RUN_MARKERS = ("config.json",)', REPORT),
    ('NL28', R, '    if status is None and not any((run / name)', '    if not any((run / name)', LIVE_REPORT),
    # Evaluation: its loader built once, kept for its first run
    ('NL22', EV, '        self._first_loader = loader if keep_loader else None',
     '        self._first_loader = None', ONCE),
    ('NL23', EV, '            self._first_loader = None\n            return first', '            return first', ONCE),
    ('NL24', FI, '        raise SeveralSizesError(', '        raise DatasetError(', ONCE),
    ('NL25', EV, '            self.batch_size = 1\n            loader = self._loader()',
     '            loader = self._loader()', ONCE),
    ('NL26', T, '    keep_loader=False)  # (run at', '    keep_loader=True)  # (run at', TRAIN_EVAL_BROKEN),
    ('NL27', EV, 'other.model, other._first_loader = model, None', 'other.model = model', COPY_BEFORE_RUN),
    # the suite's check that its tests leave nothing in the folder it runs in
    ('NL09', CONFTEST, '    if not hasattr(session.config, "workerinput"):  # (the controller',
     '    if hasattr(session.config, "workerinput"):  # (the controller', GUARD),
    ('NL10', CONFTEST, 'invocation_params.dir) - before))', 'invocation_params.dir)))', GUARD),
    ('NL11', CONFTEST, '        paths.update((root / sub).rglob("*"))', '        paths.update((root / sub).glob("*"))',
     GUARD),
    ('NL12', CONFTEST, ' if not UNLISTED.intersection(p.relative_to(root).parts)}', '}', GUARD),
    ('NL13', CONFTEST, '        session.exitstatus = pytest.ExitCode.TESTS_FAILED', '        pass', GUARD),
    # atomic_write: another process's write in progress keeps its temp file
    ('NL14', AT, '            if is_stale(temp):  # (another', '            if True:  # (another', RACE),
    ('NL15', AT, 'prefix=f".{short_name(path.name)}.{writer_tag()}-"', 'prefix=f".{short_name(path.name)}."',
     RACE + STALE),
    ('NL16', AT, '    except (ProcessLookupError, OverflowError):\n        return True',
     '    except (ProcessLookupError, OverflowError):\n        return False', STALE),
    ('NL17', AT, '    if host != _HOST or os.name == "nt":', '    if os.name == "nt":', STALE),
    ('NL18', AT, '    if not (pid.isdigit() and letters):\n        return True',
     '    if not (pid.isdigit() and letters):\n        return False', STALE),
    ('NL19', AT, '    except PermissionError:  # there is: another user\'s\n        return False',
     '    except PermissionError:  # there is: another user\'s\n        return True', STALE),
    # the resume advice, the TensorBoard advice, --preset and --json, as a Python caller spells them (PY01-PY06)
    ('PY01', T, 'f"epoch={n}", epoch_name(n))', 'f"epoch={n - 1}", epoch_name(n))',
     [REL + "a_damaged_latest_checkpoint_names_the_runs_others_to_resume_from"]),
    ('PY02', T, '(resume=True resumes it in Python)', '(resume resumes it in Python)',
     ["tests/test_stop.py::test_sigterm_ends_the_iteration_in_progress_saves_and_raises_training_stopped"]),
    ('PY03', T, 'f"resume={str(self.saved_path)!r}"]', 'f"resume={str(self.ckpt_path)!r}"]',
     [LOOP + "going_back_sets_the_later_checkpoints_aside_and_refuses_them_by_epoch"]),
    ('PY04', T, '--no-tensorboard (tensorboard=False in Python)', '--no-tensorboard (tensorboard=None in Python)',
     [CZ + "a_run_logging_to_tensorboard_without_its_package_says_train_s_keyword_too"]),
    ('PY05', CK, 'the same make_config fields "', 'the same fields "',
     [REL + "fine_tuning_may_change_sizes_dropout_and_init_but_not_the_networks"]),
    ('PY06', SW, 'refuse_checkpoint_json(json_path, "sweep.json", "json_path")',
     'refuse_checkpoint_json(json_path, "sweep.json")',
     [CZ + "evaluate_checkpoints_refusals_of_its_json_name_json_path"]),
    # a refused start changes nothing (RR01-RR08): every check before the first write to the run folder
    ('RR01', T, '        self.dist.each_decides(fit)\n',
     '        self.dist.each_decides(fit)\n        if self.saved_step is not None:\n            self._truncate_log()\n',
     REFUSED_RESUME),
    ('RR02', T, '    if not step:\n        return _eval_rows(run_dir), None',
     '    if True:\n        return _eval_rows(run_dir), None',
     REFUSED_RESUME + KEPT_EVALS),
    ('RR03', T, 'rows, best, self.run_dir, self.data_root)', 'rows, self.best, self.run_dir, self.data_root)',
     REFUSED_RESUME + KEPT_EVALS),
    ('RR04', T, '        if not implied:\n            raise\n        raise ConfigError(f"{run_dir} logs',
     '        if implied:\n            raise\n        raise ConfigError(f"{run_dir} logs',
     REFUSED_RESUME + REFUSED_NEW),
    ('RR05', T, '                _check_tensorboard(self.run_dir, implied)', '                pass', REFUSED_RESUME),
    ('RR06', IO, '    return next((f for f in reversed([folder, *folder.parents]) if not f.exists()), None)',
     '    return None if folder.exists() else folder', REFUSED_NEW),
    ('RR07', IO, '    for f in [Path(folder), *Path(folder).parents]:', '    for f in [Path(folder)]:', REFUSED_NEW),
    ('RR08', T, '            self.run_dir, self.saved_step or 0, self.resume_path,',
     '            self.run_dir, 0, self.resume_path,',
     REFUSED_RESUME),
    # the merge's mends (MG)
    ('MG01', T, '        if failed and self._made_folder is not None:  # (None too',
     '        if failed:  # (None too',
     ["tests/test_user_paths.py::test_a_dry_run_refuses_what_the_run_refuses_of_its_data_machine_evaluations_and_lock"]),
    # the review of 0faacdf.. (RV01-RV04): made_alike's advice names the epoch's file; a failed download's folders
    ('RV01', RT, "give its file, {path.parent / 'epoch_N.pt'})", "give its file, {path / 'epoch_N.pt'})",
     RANKS_EPOCH_FILE),
    ('RV02', DL, '        remove_made(dir, made)  # (the empty ones: a partial file kept to resume keeps its folder)\n'
                 '        raise\n    return target\n', '        raise\n    return target\n', DOWNLOAD_MADE),
    ('RV03', DL, '        remove_made(dir, made)  # (the empty ones: a partial file kept to resume keeps its folder)\n'
                 '        raise\n    return out\n', '        raise\n    return out\n', DOWNLOAD_MADE),
    ('RV04', DL, '    made = missing_top(dir)  # (made at the first byte; a failure leaves none of them empty)\n'
                 '    # A dataset', '    made = dir  # (made at the first byte; a failure leaves none of them empty)\n'
                 '    # A dataset', DOWNLOAD_MADE),
    # under torchrun (TD01-TD05): the other ranks' evaluations before the resume's writes, rank 0 alone writes,
    # the dry run's config printed by rank 0 and the dataset-name note by local rank 0 (the other ranks'
    # evaluations left to rank 0, main_decides: not here, see docs/mutation-engine.md)
    ('TD01', T, '        self.dist.main_decides(rank0_checks)\n        if cfg.eval_every and self.world > 1:',
     '        self.dist.main_decides(rank0_checks)\n        if self.saved_step is not None:\n'
     '            self.dist.main_decides(self._truncate_log)\n        if cfg.eval_every and self.world > 1:',
     TD_REFUSED),
    ('TD02', T, '            self.dist.main_decides(self._truncate_log)',
     '            self.dist.each_decides(self._truncate_log)', TD_BACK),
    ('TD03', CLI, '    main = _rank0()', '    main = True',
     TD_DRY),
    ('TD04', CLI, '    return not _under_torchrun() or os.environ.get("RANK") == "0"',
     '    return not _under_torchrun() and os.environ.get("RANK") == "0"', TD_DRY),
    ('TD05', CLI, '    if hint and not _said_on_this_machine():', '    if hint:', TD_DRY),
    # a spawned loader worker ends as a forked one (SP01-SP03): no interpreter finalisation to abort in
    ('SP01', "pipelines/cpu_loader.py", '    atexit.register(_end_unfinalised)\n', '', SPAWNED),
    ('SP02', "pipelines/cpu_loader.py", '    os._exit(0)\n', '    return\n', SPAWNED),
    ('SP03', "pipelines/cpu_loader.py", '            stream.flush()\n', '            pass\n', SPAWNED),
    # a loader worker locked up in its fork is started again (WS01-WS07)
    ('WS01', CL, '    started[worker_id] = 1\n', '', LOCKED_UP),
    ('WS02', CL, '            if not stuck:\n                return it\n', '', LOCKED_UP),
    ('WS03', CL, '        for w in stuck:\n            w.kill()\n', '', LOCKED_UP),
    ('WS04', CL, '            signal_handling._remove_worker_pids(id(it))\n', '', LOCKED_UP),
    ('WS05', CL, 'for attempt in range(1, WORKER_STARTS + 1):', 'for attempt in range(1, 2):', LOCKED_UP),
    ('WS06', CL, '        self._free()  # (the rest', '        it._shutdown_workers()  # (the rest', LOCKED_UP),
    ('WS07', CL, 'if type(w._popen).__module__ == "multiprocessing.popen_fork"]', 'if False]', LOCKED_UP),
    # an Evaluation refused after making its loader closes it (EC01-EC02)
    ('EC01', "engine/evaluate.py", '            loader.close()  # a refused evaluation keeps no loader',
     '            pass  # a refused evaluation keeps no loader', REFUSED_EVALUATION),
    ('EC02', "engine/evaluate.py",
     '            self._load_networks(networks_from)\n'
     '        except BaseException:\n            loader.close()  # a refused evaluation keeps no loader (DALI\'s: its '
     'pipeline\'s threads and memory)\n            raise\n',
     '        except BaseException:\n            loader.close()  # a refused evaluation keeps no loader (DALI\'s: its '
     'pipeline\'s threads and memory)\n            raise\n'
     '        self._load_networks(networks_from)\n', REFUSED_EVALUATION),
    # the reference's option names answered with ours, another command's option named with its commands (RO01-RO05)
    ('RO01', CLI, '        elif hint is not None:\n', '        elif False:\n', REF_NAMES),
    ('RO02', CLI, 'if c != command and option in p._option_string_actions]', 'if c != command]', REF_NAMES),
    ('RO03', CLI, '            parser.error(_unrecognized(extras', '            self.error(_unrecognized(extras',
     REF_NAMES),
    ('RO04', CLI, 'if command != "train" and\n                   name[2:] in model_fields else ""',
     'if command != "train" else ""', REF_NAMES),
    ('RO05', CLI, 't.split("=", 1)[0] for t in extras', 't for t in extras', REF_NAMES),
    # the bilinear upconv of a plane one pixel wide, which inductor's CPU code generator failed on (BU01-BU04)
    ('BU01', "engine/networks.py", '        if x.shape[-1] != 1:\n            if x.device.type',
     '        if True:\n            if x.device.type', BILINEAR),
    ('BU02', "engine/networks.py", 'return self[2](y.contiguous(memory_format=memory_format(x)))',
     'return self[2](y)', BILINEAR),
    ('BU03', "engine/networks.py", 'mode="bilinear") if h > 1 else x', 'mode="bilinear") if False else x', BILINEAR),
    ('BU04', "engine/networks.py", '(1, 1, 1, 1), mode="reflect")', '(1, 1, 1, 1), mode="replicate")', BILINEAR),
    # export's and the demo data's temporary names of their own, removed whatever stops the writing (TN01-TN05)
    ('TN01', "engine/export.py", 'fd, name = temp_beside(out, f".tmp.{fmt}")\n    os.close(fd)\n',
     'name = str(out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}"))\n', TEMPS_OWN),
    ('TN02', AT, '    os.chmod(tmp, mode)\n    return fd, tmp', '    return fd, tmp', TEMPS_OWN),
    ('TN03', RT, '        finally:\n            shutil.rmtree(tmp, ignore_errors=True)\n',
     '        except ImportError:\n            pass\n        shutil.rmtree(tmp, ignore_errors=True)\n', TEMPS_OWN),
    ('TN04', RT, '            usual_folder_mode(tmp)\n', '            pass\n', TEMPS_OWN),
    ('TN05', RT, 'tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.{writer_tag()}-", suffix=".tmp", dir=root.parent))',
     'tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp"); shutil.rmtree(tmp, ignore_errors=True); tmp.mkdir()',
     TEMPS_OWN),
    # users' own data at its edges, and the gloo group's ending (DE01-DE39)
    ('DE01', FI, '        if not stat.S_ISREG(os.stat(path).st_mode):', '        if False:', NOT_REG),
    ('DE02', AT, '(stat.S_ISFIFO, "a named pipe")', '(stat.S_ISSOCK, "a named pipe")', NOT_REG),
    ('DE35', AT, '    if kind := special_file(given):', '    if False:', NOT_FILE),
    ('DE36', AT, '    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):',
     '    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISFIFO(mode):', NOT_FILE),
    ('DE37', "engine/evaluate.py", '    if kind := special_file(path):  # (before the work', '    if False:  # (',
     NOT_FILE),
    ('DE38', EX, '    if kind := special_file(out):', '    if False:', NOT_FILE),
    ('DE39', "kernels/tune.py", '    if os.path.lexists(path) and not (os.path.isfile(path) or os.path.islink(path)):',
     '    if False:', NOT_FILE),
    ('DE03', "pipelines/dali_loader.py", 'if p is not None and not _utf8(p)]', 'if p is not None and False]',
     DALI_UTF8),
    ('DE04', FI, '    if layout != "aligned" and from_a and (beside :=',
     '    if layout == "aligned" and from_a and (beside :=', BESIDE),
    ('DE05', FI, '        if real != top and os.path.commonpath([real, top]) == real:', '        if False:', ABOVE),
    ('DE06', FI, '            elif others is not None and name.lower().endswith(OTHER_FORMATS):',
     '            elif False:', OTHER_FMT),
    ('DE07', FI, '    where = folders[0].parent if layout == "ab_folders" else folders[0]', '    where = folders[0]',
     AB_WHERE),
    ('DE08', "pipelines/errors.py", '{path if str(path).isprintable() else repr(str(path))}', '{path}', NEWLINE),
    ('DE09', "engine/images.py", 'html.escape(quote(os.fsencode(path)))', 'html.escape(quote(path))', NOT_UTF8),
    ('DE10', "engine/images.py", '.decode("utf-8", "replace")', '.decode("utf-8", "surrogateescape")', NOT_UTF8),
    ('DE11', "engine/runtime.py", '                time.sleep(0.2)\n', '                pass\n', GLOO_END),
    ('DE12', "engine/runtime.py", '            if dist.get_backend() == "gloo":',
     '            if dist.get_backend() != "gloo":', GLOO_END),
    ('DE13', "kernels/fuse.py", 'impl=impl, double_backward=double_backward)', 'impl=impl)', FUSE_DB),
    ('DE14', CLI, 'p.add_argument("--skip_bad", action=argparse.BooleanOptionalAction, default=None,',
     'p.add_argument("--skip_bad", action="store_true", default=None,', NO_SKIP),
    ('DE15', FI, '        listed = [_by_nfc(files) for files in listed]\n', '', NFC),
    ('DE16', FI, 'merged.setdefault(unicodedata.normalize("NFC", key), [])', 'merged.setdefault(key, [])', NFC),
    ('DE17', TR, '        if (run_dir / sub).is_dir():\n            check_writable(',
     '        if False:\n            check_writable(', SUBS_RO),
    ('DE18', TR, '            if self._held and not self._pending:', '            if False:', SECOND_INT),
    ('DE19', TR, '                with self._stop.holding() if self._stop else contextlib.nullcontext():',
     '                with contextlib.nullcontext():', SECOND_INT),
    ('DE20', TR, '            if self.on_broken is not None:\n                self.on_broken()',
     '            if False:\n                self.on_broken()', PIPE),
    ('DE21', CLI, '    except BrokenPipeError:\n', '    except ZeroDivisionError:\n', PIPE),
    ('DE22', EX, 'fd, name = temp_beside(out, f".tmp.{fmt}")', 'fd, name = temp_beside(out, f".tmp{out.suffix}")',
     EXPORT_SUFFIX),
    ('DE23', EX, '        if named is not None and named != fmt:', '        if False:', EXPORT_CLI),
    ('DE24', EX, '    if opset is not None and fmt != "onnx":', '    if False:', EXPORT_CLI),
    ('DE25', "engine/sweep.py", '        if path.stat().st_mtime_ns <= eval_json.stat().st_mtime_ns:',
     '        if True:', REUSE_READ),
    ('DE26', "engine/checkpoint.py", 'r"epoch_(0|[1-9][0-9]*)\\.pt"', 'r"epoch_([0-9]+)\\.pt"', EPOCH_NAMES),
    ('DE27', "engine/serve.py", '        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)',
     '        previous = None', SERVE_TERM),
    ('DE28', "engine/serve.py", '        if fmt == "MPO":', '        if False:', MPO),
    ('DE29', "engine/serve.py", 'shown = repr(item_id) if len(item_id) <= 80 else',
     'shown = repr(item_id) if True else', LONG_ID),
    ('DE30', TR, '        _LOCKS.add(fd)\n', '', FORK_LOCK),
    ('DE31', TR, '            self.eval_owed = self.step\n            self.save()\n', '            pass\n',
     EVAL_DATA),
    ('DE32', TR, '        if not split.is_dir():', '        if False:', SPLIT_GONE),
    ('DE33', FI, 'all bad: the rest were not looked at)" if n_listed > len(samples) else "")',
     'all bad: the rest were not looked at)" if False else "")', FIRST_BAD),
    ('DE34', "engine/compare.py", ' + (f", {given.count(\'\')} of them empty" if "" in given else "")', '',
     NAMES_EMPTY),
    # session 36's user passes (US01-US57)
    ('US01', TR, '    SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None), signal.SIGINT)',
     '    SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT)', HANG_UP),
    ('US02', IO, 'if not (isinstance(e, BrokenPipeError) or e.errno == errno.EIO):',
     'if not isinstance(e, BrokenPipeError):', HANG_UP),
    ('US03', CLI, '            say(sys.stderr, f"{stopped}\\n")', '            print(stopped, file=sys.stderr)',
     HANG_UP),
    ('US04', CL, 'STOP_SIGNALS = {s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))',
     'STOP_SIGNALS = {s for s in (signal.SIGINT, signal.SIGTERM)', HANG_UP),
    ('US05', TR, 'SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None), signal.SIGINT)',
     'SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None))', HANG_UP),
    ('US06', IP, '    if (n_frames := (n_codes - 1) * frames + 1) > MAX_FRAMES:', '    if False:', FRAMES),
    ('US07', IP, '    refs = list(refs)  # (counted before it is read',
     '    refs = iter(refs)  # (counted before it is read', FRAMES),
    ('US08', TR, '    if saved_digest is not None and saved_digest != digest:', '    if False:',
     OTHER_FILES),
    ('US09', TR, ' + b"\\0%d\\0" % size)', ' + b"\\0")', OTHER_FILES),
    ('US10', TR, 'digest.update(os.fsencode(os.path.relpath(p, root))', 'digest.update(os.fsencode(p)', OTHER_FILES),
    ('US11', RT, '    if (pil := Image.MAX_IMAGE_PIXELS) is not None and data.max_pixels > pil:', '    if False:',
     PIL_LIMIT),
    ('US12', CLI, '    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None',
     '    pil_limit = Image.MAX_IMAGE_PIXELS', PIL_LIMIT),
    ('US13', CLI, '        Image.MAX_IMAGE_PIXELS = pil_limit', '        pass', PIL_LIMIT),
    ('US14', TR, '            self._log_divergence(log,', '            (lambda *a: None)(log,', BETWEEN),
    ('US15', TR, 'the report\'s latest."""\n        if bad := self.model.nonfinite():',
     'the report\'s latest."""\n        if False:', BETWEEN),
    ('US16', TR, 'self.tb.log_row({**row, **{k: v for k, v in avg.items() if not math.isfinite(v)}})',
     'self.tb.log_row(row)', BETWEEN),
    ('US17', TR, 'amp = " (or --amp off)" if cfg.amp != "off" else ""', 'amp = " (or --amp off)"', BETWEEN),
    ('US18', R, '_validation(validation or [], config, log.steps, log.diverged_at)',
     '_validation(validation or [], config, log.steps)', MARKED),
    ('US19', R, 'per_input = ("its one output" if', 'per_input = ("its one output" if False and', MARKED),
    ('US20', R, '    elif (config or {}).get("n_samples", 1):  # (train', '    else:  # (train', CAPTION),
    ('US21', R, '        y1 = 1.0\n', '        y0, y1 = -1.0, 1.0\n', ZERO_AXIS),
    ('US22', IO, '    if len(line) > width and optional:\n        line = line.replace(', '    if False:\n        '
     'line = line.replace(', FITS),
    ('US23', TR, 'f"{k} {v:.4g}" for k, v in losses.items()', 'f"{k} {v:.3f}" for k, v in losses.items()', FITS),
    ('US24', TR, '                    aside += time.monotonic() - t_aside', '                    aside += 0.0', ASIDE),
    ('US25', TR, '        if later:\n            self._drop_later_views()', '        if False:\n            '
     'self._drop_later_views()', VIEWS),
    ('US26', TR, '        (self.run_dir / "eval.json").unlink(missing_ok=True)\n', '', VIEWS),
    ('US27', TR, '            atomic_write(latest, lambda f: shutil.copyfileobj(src, f), what="sample grid")',
     '            pass', VIEWS),
    ('US28', TR, '        if not (diversity or encoded):', '        if False:', NOTHING),
    ('US29', TR, '        encoded = "l1" in chosen and ev.model.E is not None and ev.has_B',
     '        encoded = "l1" in chosen', NOTHING),
    ('US30', "pipelines/errors.py", '    error.from_rank0 = rank > 0\n    return error', '    return error', ONCE),
    ('US31', CLI, '        if not _rank0():\n            return 130',
     '        if False:\n            return 130', INTERRUPT),
    ('US32', CLI, '    if Path(out).exists():', '    if True:', INTERRUPT),
    ('US33', CLI, 'launch = train_launch(world, args.model_cls)', 'launch = "bicyclegan train"', INTERRUPT),
    ('US34', TR, 'return f"delete {shlex.quote(str(self.run_dir))} and start the run again"',
     'return "start the run again"', DELETE),
    ('US35', CLI, 'if bad := [k for k in unused if k in given and given[k] is not False]:', 'if False:', UNUSED),
    ('US36', CLI, 'if k in given and given[k] is not False]', 'if k in given]', UNUSED),
    ('US37', CLI, '    elif cfg.lambda_GAN2 == 0:\n', '    elif False:\n', UNUSED),
    ('US38', CLI, '    if m.unet_depth < 6:  # (networks.py', '    if m.unet_depth < 5:  # (networks.py', UNUSED),
    ('US39', "engine/checkpoint.py", '    if theirs.variant != cfg.variant and not discriminators_free:',
     '    if theirs.variant != cfg.variant:', VARIANTS),
    ('US40', TR, 'if "E" in missing\n', 'if False\n', VARIANTS),
    ('US41', CFG, '            if self.num_downs is None and self.netG == "unet":', '            if False:', HALVES),
    ('US42', CFG, ' num_downs <= {most} (netG=unet derives it from the size)" if most >= 2 else ""))',
     ' num_downs <= {most} (netG=unet derives it from the size)" if True else ""))', HALVES),
    ('US43', CL, '                self._check_pass(token)  # (before: the workers\' iterator',
     '                pass  # (', ONE_PASS),
    ('US44', CL, '        self._active = token = object()',
     '        self._active = token = getattr(self, "_active", None) or object()', ONE_PASS),
    ('US45', "pipelines/loader.py", '        if device.type not in ("cpu", "cuda"):', '        if False:', DEVICE),
    ('US46', TK, '    if len(keys) > 1:  # (one entry', '    if False:  # (one entry', INGEST),
    ('US47', TK, '                            if newest.get(_figure(b), i) == i]', '                            ]',
     INGEST),
    ('US48', TK, '            raise TrackError(f"{src}: ingested already, as {old}")',
     '            pass', INGEST),
    ('US49', TK, 'return (clean or [r for r in earlier if not r["dirty"]] or earlier or [None])[-1]',
     'return (clean or earlier or [None])[-1]', SETTINGS),
    ('US50', TK, '        having = [r for r in having if settings(r["figures"][name]) == settings(fig)]',
     '        having = having', SETTINGS),
    ('US51', TK, '        if fig["gate"] and fig["gate"] not in fig["rows"]:', '        if False:', SETTINGS),
    ('US52', TK, '    if not _own(args.history, HISTORY) and _own(args.results, RESULTS):', '    if False:', SCRATCH),
    ('US53', TK, 'allow_dry_run=not _own(args.history, HISTORY) and not _own(args.results, RESULTS))',
     'allow_dry_run=args.history != HISTORY and args.results != RESULTS)', SCRATCH),
    ('US54', TK, '    if stray := [r for r in runs if r["machine"].get("key", key) != key]:', '    if stray := []:',
     BAD_HISTORY),
    ('US55', TK, '    if not keys:\n        raise TrackError(f"{args.history}: no machine',
     '    if False:\n        raise TrackError(f"{args.history}: no machine', BAD_HISTORY),
    ('US56', "bench/gpu_check.sh", 'if [ $DRY = 0 ] && ! "$PY"', 'if false && ! "$PY"', NO_GPU),
    ('US57', "kernels/tune.py", '    if not triton_available():  # (a traceback', '    if False:  # (a traceback',
     TUNE_CMD),
    # session 37: the authors' workflow, the paper's evaluation, a hostile machine, the CPU's profile, a review
    ('AW01', EX, 'if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):',
     'if value is not None and (not isinstance(value, int) or value < 1):', EXPORT_SIDES),
    ('AW02', EX, 'dynamic_shapes=dynamic_shapes), buf)\n                tmp.write_bytes(buf.getbuffer())',
     'dynamic_shapes=dynamic_shapes), tmp)', EXPORT_FULL),
    ('AW03', M, 'INTERP_MODES = ("slerp", "linear")', 'INTERP_MODES = ("linear", "slerp")', SERVE_SLERP),
    ('AW04', "engine/__init__.py", '"USER_ERRORS", "WeightsError",', '"USER_ERRORS",', ERRORS_OUT),
    ('AW05', EV, '    row = -(-per // 16) * 16', '    row = per', CODES),
    ('AW06', EV, 'result["lpips"]["std"] / math.sqrt(len(d))', 'result["lpips"]["std"] / len(d)', LPIPS_SE),
    ('AW07', SW, '    if "lpips" in metrics:\n        weights +=', '    if False:\n        weights +=', PROTOCOL_FILES),
    ('AW08', SW, 'os.path.relpath(Path(d, f), root)) for folder', 'str(Path(d, f))) for folder', ABSOLUTE),
    ('AW09', SW, 'f"{name}\\0{st.st_size}\\0{st.st_mtime_ns}\\0"', 'f"{name}\\0{st.st_size}\\0"', PROTOCOL_FILES),
    ('AW10', CP, '(name if model.cfg.model.nz else f"{name} (no z)",', '(name,', NO_Z),
    ('AW11', CP, 'compare_image(A, B, outputs, coded=coded)', 'compare_image(A, B, outputs)', NO_Z_HEAD),
    ('AW12', CLI, '    print(line, file=sys.stderr, flush=True)', '    print(line, flush=True)', TO_STDERR),
    ('AW13', CLI, '''        write_json(path, json_safe(r), what="evaluation results")''',
     '''        print(format_table(r))
        write_json(path, json_safe(r), what="evaluation results")''', WRITE_FIRST),
    ('AW14', CLI, '        if getattr(sys, name) is None:', '        if False:', CLOSED),
    ('AW15', AT, '    return name if len(raw) <= 200 else', '    return name if True else', LONG),
    ('AW16', AT, 'self.by_name.pop(short_name(path.name), [])', 'self.by_name.pop(path.name, [])', LONG),
    ('AW17', DM, '            with contextlib.suppress(OSError):\n                writing.unlink(missing_ok=True)',
     '            with contextlib.suppress(OSError):\n                pass', DEMO_FULL),
    ('AW18', T, '        elif self.saved_step is not None:\n            then = (',
     '        elif False:\n            then = (', MID_RUN),
    ('AW19', "engine/networks.py", 'x.contiguous(memory_format=torch.channels_last)).contiguous()',
     'x.contiguous(memory_format=torch.channels_last))', UPCONV),
    ('AW20', CLI, '        if (cfg := checkpoint_config(source, options)) is not None:', '        if False:', OUTSIDE),
    ('AW21', CK, 'f"not a torch file: it begins {head!r}" if head and not head.startswith(',
     'f"not a torch file: it begins {head!r}" if False and not head.startswith(', PEEK),
    ('AW22', CK, '    if isinstance(every, int) and every > 0:', '    if False:', EPOCHS),
    ('AW23', CLI, '        data["dataroot"] = absolute(data["dataroot"])', '        pass', IMPORT_ABS),
    ('AW24', CLI, 'and ours and here[1] not in ours:', 'and ours and False:', HINTS),
    ('AW25', CLI, 'hint = COMMAND_REFERENCE_OPTIONS.get((command, name), REFERENCE_OPTIONS.get(name))',
     'hint = REFERENCE_OPTIONS.get(name)', HINTS),
    ('AW26', DL, '            if done.get("address") == TESTSETS.get(target.name) else "")',
     '            if False else "")', TESTSET),
    ('AW27', IO, 'to += "links back (a loop)" if _loops(top) else "does not exist"', 'to += "does not exist"', LOOPS),
    ('AW28', RT, '    images = resolved_out(out) / "images"', '    images = (Path(out) / "images").resolve()',
     LOOPS),
    ('AW29', SA, '            claim_outputs(out / "images", [', '            (out / "images", [', STOPPED),
    ('AW30', IP, '        claim_outputs(images, [', '        (images, [', STOPPED),
    ('AW31', AT, 'if "unexpected pos" in text and not limited', 'if False', CUT_WRITE),
    ('AW32', T, '                raise OutputError(f"{e} (at step {self.step}); {self._intact()}") from e',
     '                raise', GRID_FAIL),
    ('AW33', IM, '    for p in (path, *more):', '    for p in (path,):', GRID_ONCE),
    ('AW34', IP, '    frames = [f.quantize(method=Image.Quantize.FASTOCTREE) for f in frames]',
     '    frames = [f.quantize(palette=frames[0].quantize(method=Image.Quantize.FASTOCTREE)) for f in frames]', GIF),
    ('AW35', RT, '    data = dataclasses.replace(cfg.data, max_dataset_size=None)', '    data = cfg.data', NUM_INPUTS),
    ('AW36', IO, '        with tempfile.TemporaryFile(dir=folder if top is None else top.parent):',
     '        with tempfile.TemporaryFile(dir=folder if top is None else tempfile.gettempdir()):', IN_THE_WAY),
    ('AW37', T, 'start it again in a new --out, or delete "\n'
     '                   f"{shlex.quote(str(folder.parent))} first', 'start it again"\n                   f"',
     NONE_OTHER),
    ('AW38', IO, '        kind = "a folder" if path.is_dir() else special_file(path)', '        kind = None',
     NOT_A_FILE),
    ('AW39', IO, '    return "" if os.environ.get("TERM") == "dumb" else "\\x1b[K"',
     '    return "\\x1b[K"', DUMB),
    ('AW40', AT, '    if path.is_symlink():\n        path = Path(os.path.realpath(path))',
     '    if False:\n        path = Path(os.path.realpath(path))', THROUGH),
    ('AW41', CLI, '"--json" if args.json else "the evaluation\'s results (--json: elsewhere)"', '"--json"',
     RESULTS_RO),
    ('SQ01', CK, '    if (Path(folder) / LATEST).exists():\n        return True, None',
     '    if False:\n        return True, None', AUTO_PY),
    ('SQ02', CK, '    return (True, epochs[-1]) if epochs else (False, None)', '    return (False, None)', AUTO_PY),
    ('SQ03', CK, '    if Path(AUTO).exists():', '    if False:', AUTO_CLI),
    ('SQ04', T, '    return type(resume) is str and resume == AUTO', '    return False', AUTO_PY),
    ('SQ05', CLI, '    args.resume, args.epoch, args.init_from, args.fresh_D = True, epoch, None, None',
     '    args.resume, args.epoch = True, epoch', AUTO_CLI),
    ('SQ06', CLI, '        args.resume, args.auto_start = False, True\n',
     '        args.auto_start = True\n', AUTO_CLI),
    ('SQ07', SV, '        rows = max(1, FORWARD_PIXELS // (A.shape[-2] * A.shape[-1]))', '        rows = n', BATCHES),
    ('SQ08', SV, '                if self.stopping:', '                if False:', BATCHES),
    ('SQ09', SV, 'or sum(self.uploads.values()) > 4 * 3 * self.max_upload_pixels)', ')', KEPT),
    ('SQ10', SV, '    names = {*LOCAL_NAMES, *([_host_name(f"[{host}]" if ":" in host else host)] if host else []),',
     '    names = {*LOCAL_NAMES,', HOSTS),
    ('SQ11', SV, '    except ClientDisconnect:', '    except RuntimeError:', GONE),
    ('SQ12', SV, '@app.api_route("/api/info", methods=["GET", "HEAD"])', '@app.get("/api/info")', HOSTS),
    ('SQ13', SV, '                explorer.stopping = True\n', '', STOPS),
    ('SQ14', SV, '                logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)',
     '                pass', STOPS),
    ('SQ15', SV, '    sock = bind(host, port)  # first', '    sock = None  # first', PORT),
    ('SQ16', SV, '        if item_id == "":', '        if False:', NO_REF),
    ('SQ17', FI, '    if len(bad) <= limit or not _saving_checks or (path := _cached(where, ".bad.txt")) is None:',
     '    if True or (path := _cached(where, ".bad.txt")) is None:', ALL_BAD),
    ('SQ18', "pipelines/errors.py", '+ (f" (all {len(bad)} listed in {listed})" if listed else "")', '', ALL_BAD),
    ('SQ19', CL, 'warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)',
     'pass', WORKERS),
    ('SQ20', CL, '        if workers_given and num_workers > (cores := usable_cores()):',
     '        if False and num_workers > (cores := usable_cores()):', WORKERS),
    ('SQ21', CFG, '            setattr(obj, f.name, value.item())', '            pass', NUMPY),
    ('SQ22', CFG, 'numpy = (f" (a Python int: int({name}))" if', 'numpy = ("" if', NUMPY),
    ('SQ23', CK, '    state = rng_state(device, host=True)', '    state = rng_state(device)', CZ_KEPT),
    ('SQ24', CK, '    state = {"torch": torch.get_rng_state()}\n    if host:',
     '    state = {"torch": torch.get_rng_state()}\n    if True:', SAME_FILE),
    ('SQ25', T, '        if changed := _rounding_changes(state, self.cfg, self.model):',
     '        if False and (changed := _rounding_changes(state, self.cfg, self.model)):', ROUNDING),
    ('SQ26', RT, '    if rank is None and world > 1:', '    if False:', LAUNCH),
    ('SQ27', RT, '    if rank is not None and rank >= world:', '    if False:', LAUNCH),
    ('SQ28', RT, '    if value is None or value < low:', '    if value is None:', LAUNCH),
    ('SQ29', CLI, '            launch_env()  # (a launch', '            pass  # (a launch', LAUNCH),
    ('SQ30', CLI, '    except ConfigError:\n        return 1', '    except KeyError:\n        return 1', LAUNCH),
    ('SQ31', RT, '        if owns and not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):',
     '        if False:', MEET),
    ('SQ32', EV, '    except (OSError, ValueError) as e:\n        reason',
     '    except ValueError as e:\n        reason', PALETTES),
    ('SQ33', EV, 'self.info = _palette_info(palettes) if "palette" in chosen and palettes.is_file() else None',
     'self.info = _palette_info(palettes) if palettes.is_file() else None', PALETTES),
    ('SQ34', FI, 'os.walk(folder, onerror=unreadable, followlinks=True)', 'os.walk(folder, followlinks=True)',
     UNREADABLE),
    ('SQ35', IM, '    A_in = model._input(G, "sample_columns: A", A, model.cfg.model.input_nc)', '    A_in = A',
     DTYPES),
    ('SQ36', IM, '    if nz and z is not None and not (torch.is_tensor(z)', '    if False and not (torch.is_tensor(z)',
     DTYPES),
    ('SQ37', IM, '        return x.to(A.device, A.dtype)', '        return x', DTYPES),
    ('SQ38', IP, '        x = model._input(G, "A", A, cfg.model.input_nc)', '        x = A', DTYPES),
    ('SQ39', M, '            device = pick_device(device)', '            pass', DEVICES),
    ('SQ40', CK, '        device = pick_device(device)\n    # A run',
     '        pass\n    # A run', DEVICES),
    ('SQ41', RT, '        if device not in (None, "auto") and (want := pick_device(device)) != model.device and not (',
     '        if False and (want := pick_device(device)) != model.device and not (', DEVICES),
    ('SQ42', M, '        if not self.training:  # (a model.eval() for a preview',
     '        if False:  # (a model.eval() for a preview', TRAIN_MODE),
    ('SQ43', "kernels/norm_act.py",
     'if (self.training or not self.track_running_stats) and shape[-1] * shape[-2] == 1:', 'if False:', ONE_VALUE),
    ('SQ44', EX, 'named = f"suffix {suffix!r}" if suffix else "no suffix"', 'named = f"suffix {suffix or \'none\'!r}"',
     NO_SUFFIX),
    ('SQ45', "kernels/_impl.py", 'return (kind == "cuda" or interpreting()) and triton_available()',
     'return triton_available() and (kind == "cuda" or interpreting())', NO_TRITON),
    ('SQ47', T, 'self.progress.note(f"measuring {what} on the test split ({n})...")',
     'pass', TABLE_LINE),
    ('SQ49', CLI, 'found["imported"] is None and not old_import(found):', 'found["imported"] is None and True:',
     OLD_IMPORT),
    ('SQ50', SW, '                    older += _of_an_older_version(found_row, want)', '                    pass',
     OLDER_ROWS),
    ('SQ51', SW, 'not isinstance(row.get("protocol"), dict) or set(row["protocol"]) < set(want))',
     'not isinstance(row.get("protocol"), dict))', OLDER_ROWS),
    ('SQ52', CK, '        if (old := _old_format_in(path)) is not None:\n            # (its numpy',
     '        if False:\n            # (its numpy', OLDER_FORMAT),
    ('SQ53', CK, '    if state["format"] in _OLD_FORMATS:\n        raise _older_format(path, state["format"])\n', '',
     OLDER_FORMAT),
    ('SQ54', "engine/__init__.py", '        return version("bicyclegan")', '        return "0.1"', VERSION),
    ('SQ55', M, '        if A.shape[2] % side or A.shape[3] % side:', '        if False:', BATCH_FORM),
    ('HS02', T, 'self.tb.log_eval(result, self.step, "final")', 'self.tb.log_eval(result, self.step)', FINAL_TAG),
    ('HS03', R, '    if hi == lo == 0:\n        return -0.1, 1.1\n', '', ZERO_AXES),
    ('HS04', R, '        status = _schedule_of(run / "report.html")', '        status = None', SCHEDULE),
    ('HS05', R, "content='{html.escape(json.dumps(schedule))}'>\"\n                     if schedule else \"\")",
     "content='{html.escape(json.dumps(schedule))}'>\"\n                     if False else \"\")", SCHEDULE),
    ('HS06', IM, "    return f\"<img src='{src}' alt='{alt}' loading='lazy'>\"",
     "    return f\"<img src='{src}' loading='lazy'>\"", GALLERY),
    ('HS07', RT, '    return title + (f" · {Path(src[\'path\']).name}, step {src[\'step\']}" if src else "")',
     '    return title', GALLERY),
    ('HS08', SW, '    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in',
     '    if False and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in', MARKUP),
    ('HS09', SW, "f\"<td>{html.escape(str(r['epoch']))}</td>\"", "f\"<td>{r['epoch']}</td>\"", MARKUP),
    ('HS10', R, '                   else f"<td>{html.escape(measure_value(row, k))}</td>" for k in keys)',
     '                   else f"<td>{measure_value(row, k)}</td>" for k in keys)', MARKUP),
    ('HS11', IM, 'if name == Path(name).name and Path(name).suffix in OUTPUT_SUFFIXES and',
     'if name == Path(name).name and', PLANTED),
    ('HS12', IM, '    earlier = [] if folder.is_symlink() else _written(folder)', '    earlier = _written(folder)',
     PLANTED),
    ('HS13', R, ' or not _whole(row.get("step")) or type(row.get("epoch", 0)) is not int:',
     ' or not _whole(row.get("step")):', NO_EPOCH),
    ('HS14', CFG, '        if self.variant == "clr" and self.lambda_z == 0:', '        if False:', CLR_Z),
    ('HS40', RT, '    starts with (TrainConfig.check_trainable)."""\n    cfg.check_trainable()',
     '    starts with (TrainConfig.check_trainable)."""', CLR_Z),
    ('HS15', R, '    if key == "diversity_lpips" and _number(v) and isinstance(lp, dict)',
     '    if False and key == "diversity_lpips" and _number(v) and isinstance(lp, dict)', STDERR),
    ('HS16', CLI, '"the checkpoint could not be measured")', '"the checkpoint could be measured")', ONE_CKPT),
    ('HS17', DL, '        self.take(MEMBER_COST)\n        dest.parent.mkdir', '        dest.parent.mkdir', ARCHIVE),
    ('HS18', DL, '        self.take(MEMBER_COST)\n        dest.mkdir', '        dest.mkdir', ARCHIVE),
    ('HS19', DL, '    except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:', '    except () as e:',
     ARCHIVE),
    ('HS20', SV, '        if network and name not in names and not _is_address(name):', '        if False:', LAN),
    ('HS21', SV, '        names |= {f"{own}.local", socket.getfqdn().lower().rstrip(".")}', '        pass', LAN),
    ('HS22', SV, 'network=not is_loopback(host),', 'network=False,', LAN_SERVE),
    ('HS39', SV, '             *(_host_name(n) for n in allow_hosts)}', '             }', LAN),
    ('HS23', EX, '        if path.is_file() and path.stat().st_size and not earlier(path):',
     '        if False:', RUN_FILES),
    ('HS24', EX, '        _write_sidecar(out, fmt, cfg, data, source, variant, encoder, batch, h, w, opset, result)\n'
     '        os.replace(tmp, out)', '        os.replace(tmp, out)\n'
     '        _write_sidecar(out, fmt, cfg, data, source, variant, encoder, batch, h, w, opset, result)', RUN_FILES),
    ('HS25', EX, '    _check_load_fits(data, h, w)', '    pass', LOAD_FITS),
    ('HS26', EX, '"encoder": checkpoint_or_model.E is not None}', '"encoder": True}', SIDECAR),
    ('HS27', EX, '        **({"max_batch": MAX_BATCH} if batch is None and fmt == "pt2" else {}),', '', SIDECAR),
    ('HS28', EX, '_run_onnx(tmp, names, x, out)', '_run_onnx(tmp, names, x)', NO_ORT),
    ('HS29', CLI, 'warnings.filterwarnings("ignore", message="onnxruntime is not installed"',
     'warnings.filterwarnings("ignore", message="nothing of the kind"', NO_ORT),
    ('HS30', CLI, '            if any(isinstance(v, str) and not v.strip() for v in',
     '            if False and any(isinstance(v, str) and not v.strip() for v in', EMPTY),
    ('HS31', CLI, '        parser = below.choices[names[-1]]\n', '        break\n', EMPTY),
    ('HS32', CFG, '        check_named("out", self.out)', '        pass', EMPTY_PATH),
    ('HS33', CFG, '        check_named("dataroot", self.dataroot)', '        pass', EMPTY_PATH),
    ('HS41', "engine/sample.py", '    check_named("out", out)  # ("" wrote', '    pass  # ("" wrote', EMPTY_API),
    ('HS42', RT, '    check_named("dataroot", dataroot)  # ("" was', '    pass  # ("" was', EMPTY_API),
    ('HS43', T, '        if self.resume_path is not None and (self.run_dir / "report.html").is_file():',
     '        if False:', RESUMED_LENGTH),
    ('HS44', SW, '[measure_value(r, k, _cell) for k in keys]', '[_cell(r.get(k)) for k in keys]', SWEEP_PM),
    ('HS45', CK, '"arithmetic": arithmetic(model), ', '', ARITH),
    ('HS46', T, '            if was.get(key) is not None and said is not None and was[key] != said:',
     '            if False:', ARITH),
    ('HS47', EX, '    if missing := [p for p in ("dynamo", "dynamic_shapes", "external_data") if p not in taken]:',
     '    if missing := []:', OLD_ONNX),
    ('HS48', RT, '        if dev.type not in ("cpu", "cuda"):', '        if False:', MPS),
    ('HS49', IM, '        return unicodedata.normalize("NFC", name).casefold()', '        return name', CASE_BLIND),
    ('HS50', "pipelines/cpu_loader.py",
     '        for sig in STOP_SIGNALS:\n            signal.signal(sig, signal.SIG_IGN)\n', '', NO_SIGWAIT),
    ('HS51', T, "except ImportError:  # Windows: the run folder's lock",
     "except OSError:  # Windows: the run folder's lock", NO_UNIX),
    ('HS52', T, '    SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None), signal.SIGINT)',
     '    SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)', NO_UNIX),
    ('HS53', CLI, '    if "D" not in used_d and not (v == "bicycle" and m.use_same_D):', '    if False:', NO_D),
    ('HS54', CLI, '    if not used_d:\n        gone =', '    if False:\n        gone =', NO_D),
    ('HS55', DL, '            if writer_gone(stale.name[len(name) + 2:-len(".extract")]):',
     '            if True:', TWO_DL),
    ('HS56', DL, '    except FileNotFoundError:  # (a traceback)', '    except OSError as e:  # (a traceback)\n'
     '        raise e\n    except FileNotFoundError:', LOST_PART),
    ('HS57', R, '        except FileNotFoundError:  # removed between the two looks',
     '        except KeyError:  # removed between the two looks', RACED_PAGE),
    ('HS58', R, '        except FileNotFoundError:  # removed since the listing',
     '        except KeyError:  # removed since the listing', RACED_PAGE),
    ('HS34', "pipelines/loader.py", '    if preprocess in RESIZING and n > limit:', '    if False:', LOAD_PIXELS),
    ('HS35', "engine/sample.py", '            and 1 / MAX_STRETCH <= aspect_ratio <= MAX_STRETCH):',
     '            and aspect_ratio > 0):', STRETCH),
    ('HS36', DL, '        m.port  # (its parse', '        m  # (its parse', MIRROR),
    ('HS37', DM, '    if h * 2 * w > MAX_PIXELS:', '    if False:', DEMO_PIXELS),
    ('HS38', "bench/gpu_check.sh", '    device_options "${run[@]}" "${device[@]}" --max_steps 50', '    :', DRY_MAIN),
    # Session 40's passes (mypy's findings sifted, line coverage, dead code, every error message, tests that cannot
    # fail): SF01-SF14
    ('SF01', "pipelines/files.py", '                    and isinstance(saved["files"], dict)):',
     '                    and True):', DAMAGED_CACHE),
    ('SF02', "pipelines/files.py", ' or not all(type(v) is int and v > 0 for v in (w, h)):', ':', DAMAGED_CACHE),
    ('SF03', "engine/cli.py", '        if name.startswith("--") and name != "--" and not any(',
     '        if False and name.startswith("--") and name != "--" and not any(', BEFORE_COMMAND),
    ('SF04', "engine/runtime.py", '        check_env_table()\n', '        pass\n', TUNING_START),
    ('SF05', "kernels/_configs.py", '    except OSError as e:  # a folder, no permission',
     '    except KeyError as e:  # a folder, no permission', TUNING_MERGE),
    ('SF06', T, '    _check_run_writable(run_dir)  # (creates nothing)', '    pass', DRY_WRITABLE),
    ('SF07', T, '        if resume_path.resolve() == ckpt_path.resolve():  # the folder\'s own',
     '        if True:  # the folder\'s own', RESUME_TYPO),
    ('SF08', "kernels/tune.py", '        _check_out(args.out)  # (exit 2', '        pass  # (exit 2', TUNING_MERGE),
    ('SF09', "bench/track.py", '        except OSError as e:  # a folder so named',
     '        except KeyError as e:  # a folder so named', DAMAGED_INGEST),
    ('SF10', "bench/track.py", 'not all(isinstance(ours.get(k), str) and ours[k] for k in ("key", "device")):',
     'False:', DAMAGED_INGEST),
    ('SF11', SV, '            if abs(v) > FLOAT32_MAX:', '            if False:', NON_FINITE),
    ('SF12', SV, '            if isinstance(v, float) and not math.isfinite(v):', '            if False:', NON_FINITE),
    ('SF13', M, '        if state.get("scaler") and self.scaler is not None:', '        if False:', FP16_RESUME),
    ('SF14', SV, '            mu = self.model.encode(it.B[None])[0]',
     '            mu = self.model.encode(it.B[None] * 0.98)[0]', ENCODED),
    ('SF15', EV, '        if bad := nonfinite_said(cols, names):  # (the encoded column too',
     '        if False:  # (the encoded column too', NONFINITE_OUT),
    ('SF16', "engine/sample.py", '            if bad := nonfinite_said(*made[1:]):  # (written as black images',
     '            if False:  # (written as black images', NONFINITE_OUT),
    ('SF17', "engine/images.py", 'n not in ("input", "ground truth") and not torch.isfinite(c).all()',
     'n.startswith("random") and not torch.isfinite(c).all()', NONFINITE_OUT),
    ('SF18', FL, '        if turned in _UNDO and _ORIENTATION not in img.tag_v2:', '        if False:', TIFF_TURN),
    ('SF19', FL, '        if img.format == "TIFF":  # (as stored', '        if False:  # (as stored', TIFF_TURN),
    ('SF20', FL, '    if _unmarked_cmyk(data):', '    if False:', ONLY_PIL),
    ('SF21', FL, '            adobe = True', '            pass', CMYK_OK),
    ('SF22', FL, '    if fmt == "PPM" and data[:2] in (b"P2", b"P3"):  # (ASCII',
     '    if False:  # (ASCII', ONLY_PIL),
    ('SF23', FL, '    from_a = layout == "ab_folders" or folders[0] not in (Path(root), Path(root) / phase)',
     '    from_a = True', BESIDE),
    ('SF24', "engine/images.py", '        stem, n = self.short(Path(path).stem), 1',
     '        stem, n = Path(path).stem, 1', LONG_NAMES),
    ('SF25', "engine/images.py", '            if e.errno != errno.ENAMETOOLONG:', '            if True:', LONG_NAMES),
    ('SF26', "engine/runtime.py", '(ckpt.stem if ckpt.stem not in (".", "..") else ckpt.name)', 'ckpt.stem', DOTS),
    ('SF27', "engine/runtime.py", 'if not RESULTS_LIKE.fullmatch(name := folder.name):',
     'if (name := folder.name) not in ("train", "val", "test"):', PLAIN_NAMES),
    ('SF28', "engine/cli.py", '        if name in ours:  # (the command\'s own',
     '        if False:  # (the command\'s own', BEFORE_COMMAND),
    ('SF29', "engine/interpolate.py", '"refs": [run.labels[r] for r in refs]', '"refs": [run.stems[r] for r in refs]',
     REFS),
    ('SF30', T, '        cfg.data.dataroot = absolute(self.data_root)',
     '        cfg.data.dataroot = str(self.data_root.resolve())', DATA_LINK),
    ('SF31', SW, '"the sweep\'s results",\n                             f"a sweep writes',
     '"the sweep\'s results") or (\n                             f"a sweep writes', SWEEP_RO),
    ('SF32', CK, '    if isinstance(now, str) and os.path.isdir(now):\n', '    if False:\n', DATA_MOVED),
    ('SF33', "engine/runtime.py", '        if dataroot is None and root.name == demo_data_name(',
     '        if False and root.name == demo_data_name(', DEMO_AGAIN),
    ('SF34', "engine/cli.py",
     '    if own is None or Path(cfg.out).resolve() == own.resolve() or _said_on_this_machine():',
     '    if True:', RESUME_NOTE),
    ('SF35', "pipelines/atomic.py", '            mode = stat.S_IMODE(st.st_mode) & 0o777 | 0o600\n',
     '            pass\n', KEEP_MODE),
    ('SF36', "engine/runtime.py", 're.compile(r"interpolate_.*|(train', 're.compile(r"(train', PLAIN_NAMES),
    ('SF37', "engine/cli.py",
     'typed = next((t for i in range(len(given)) for t in takers if given[i:i + len(t.split())] == t.split()),\n'
     '                         takers[0] if takers else None)', 'typed = takers[0] if takers else None',
     BEFORE_COMMAND),
    ('SF38', T, 'go_on = "--resume with no path" if how == "--resume" else how',
     'go_on = f"{how} with no path"', RESUME_TYPO),
    ('SF39', SV, '        check_tuning_table(self.model.cfg.model.impl, self.model.device)', '        pass',
     SERVE_TABLE),
    ('SF40', SV, '                if nonfinite_said(cols, names):  # (shown black',
     '                if False:  # (shown black', SERVE_OVERFLOW),
    ('SF41', SV, '        if not torch.isfinite(mu).all():  # (a bare 500', '        if False:  # (a bare 500',
     SERVE_OVERFLOW),
    ('SF42', "bench/track.py", '            if not isinstance(data["benchmarks"], list):  # (a TypeError',
     '            if False:  # (a TypeError', DAMAGED_INGEST),
    ('SF43', "bench/track.py", '        _name(ours["key"], "machine key", path)', '        pass', DAMAGED_INGEST),
    ('SF44', "bench/track.py",
     '        if not all(isinstance(info.get(k), str) for k in ("system", "python_implementation", "python_version")):',
     '        if False:', DAMAGED_INGEST),
    ('SF45', SV, '    names.add(own)\n', '', FOREIGN),
    ('SF51', SV, '    if network:\n        names |= {f"{own}.local"', '    if True:\n        names |= {f"{own}.local"',
     FOREIGN),
    ('SF46', "engine/cli.py", '            action.help = (', '            action.help = action.help or (', HELP_TEXTS),
    ('SF47', "engine/runtime.py", '        if "num_downs" not in str(e):', '        if True:', CROP_SIDES),
    ('SF48', "engine/cli.py", '    if args.n_train == args.n_test == 0:', '    if False:', DEMO_NONE),
    ('SF49', T, ', {self.total_steps - self.step} to go"', '"', TO_GO),
    ('SF50', "bench/track.py", '    if args.all and args.machine:', '    if False:', TRACK_ALL),
    ('SF52', "engine/cli.py", 'given = [w for i, w in enumerate(words) if not (i and words[i - 1] in valued)]',
     'given = words', BEFORE_COMMAND),
    ('SF53', CK, '    old, run = cfg.data.dataroot, run_of_checkpoint(path)', '    old, run = cfg.data.dataroot, None',
     DATA_MOVED),
    ('SF54', CK, '    folder = Path(os.path.abspath(path)).parent\n', '    folder = Path(path).parent\n',
     DATA_MOVED + RESUME_NOTE),
    ('SF55', "engine/io.py", '    if ".." not in parts:\n', '    if True:\n', DATA_LINK),
    ('SF56', "pipelines/atomic.py",
     'if stat.S_ISREG(st.st_mode) and st.st_uid == getattr(os, "geteuid", lambda: st.st_uid)():',
     'if stat.S_ISREG(st.st_mode):', KEEP_MODE),
    ('SF57', "pipelines/atomic.py", '& 0o777 | 0o600\n', '& 0o777\n', KEEP_MODE),
    ('SF58', "engine/runtime.py", 'return name if not RESULTS_LIKE.fullmatch(name) else f"inputs_{name}"',
     'return name', PLAIN_NAMES),
    ('SF59', SW, '        here = folder.resolve()', '        here = folder', SWEEP_RO),
    ('SF60', "engine/cli.py", '           None if ckpt.parent.name != "checkpoints" else',
     '           "--resume" if ckpt.parent.name != "checkpoints" else', RESUME_NOTE),
    ('SF61', "engine/cli.py", 'f"--epoch {n}" if (n := epoch_of(', '"--resume" if (n := epoch_of(', RESUME_NOTE),
    ('SF62', "bench/track.py", '        _name(pytest_benchmark_id(info), "machine", path)', '        pass',
     DAMAGED_INGEST),
    ('SF63', "bench/track.py", '    _name(commit_info["id"], "commit", runs[-1][0])', '    pass', DAMAGED_INGEST),
    ('SF64', "bench/track.py", '    figure = info.get("figure") if isinstance(info, dict) else None',
     '    figure = info.get("figure") if info else None', DAMAGED_INGEST),
    ('SF65', SW, "<h2>Checkpoints</h2><div class='across'><table>", "<h2>Checkpoints</h2><div><table>", PHONE_TABLES),
    ('SF66', "engine/compare.py", "f\"<div class='across'><table><tr>{header}", "f\"<div><table><tr>{header}",
     PHONE_TABLES),
    ('SF67', "engine/images.py", '"th{overflow-wrap:anywhere;max-width:10em} "', '""', PHONE_TABLES),
    ('SF68', R, 'table.eval td{overflow-wrap:anywhere}', 'td{overflow-wrap:anywhere}', PHONE_TABLES),
    ('SF69', "engine/compare.py", '    return lines[:keep - 1] + [', '    return lines[:keep] or [', NAMES_CUT),
    ('SF70', R, 'and not any(j != i and left - 5 < mx', 'and not any(False and left - 5 < mx', COVER),
    ('SF71', R, 'sides = (True, False) if w <= room_right or', 'sides = (True, False) if True or',
     COVER + ["tests/test_compare.py::test_scatter_places_points_by_value"]),
    ('SF72', "engine/static/explorer.html", '  dropStaleInterp();\n  if (!S.input) return;', '  if (!S.input) return;',
     STALE_ROW),
    ('SF74', R, 'sorted(folder.iterdir(), key=_natural)', 'sorted(folder.iterdir())', ORDER),
    ('SF75', "engine/cli.py", 'how = ("--resume" if ckpt.is_dir() else', 'how = (None if ckpt.is_dir() else',
     RESUME_NOTE),
    # (SF76, the abspath of _run_of, withdrawn: run_of_checkpoint makes it, SF54's mutant)
    ('SF77', "engine/io.py", 'return os.path.abspath(os.path.join(Path(*parts[:up]).resolve(), *parts[up:]))',
     'return str(Path(path).resolve())', DATA_LINK),
    ('SF78', R, 'int(part) if part.isdecimal() else part', 'int(part) if part.isdigit() else part', ORDER),
    ('SF79', "engine/compare.py", 'parts = [word] if fits(word) else re.findall(',
     'parts = [word] if True else re.findall(', NAMES_CUT),
    ('SF80', R, 'and (not inside or pl <= left and left + w <= pl + pw',
     'and (True or pl <= left and left + w <= pl + pw', COVER),
    ('SF81', R, '            shown = label[:max(3,', '            shown = label or label[:max(3,', COVER),
    ('SG01', "engine/interpolate.py", '    s = -(-VIEW_PX // min(h, w))', '    s = max(1, VIEW_PX // min(h, w))',
     SG_ENLARGE),
    ('SG02', SG_X, '      pick.setAttribute("aria-current", String(i === S.sel));', '', SG_KEYS),
    ('SG03', SG_X, '    if (pick) pick.setAttribute("aria-current", String(j === i));', '', SG_KEYS),
    ('SG04', SG_X, '      card.querySelector("div").appendChild(pick);',
     '      card.querySelector("div").textContent = "z" + (i + 1);', SG_KEYS),
    ('SG05', SG_X, '<div id="status" role="status" aria-live="polite"></div>', '<div id="status"></div>', SG_NAMES),
    ('SG06', SG_X, '    out.setAttribute("aria-live", "off");', '', SG_NAMES),
    ('SG07', SG_X, 'position: sticky; top: 0;', 'position: static; top: 0;', SG_NAMES),
    ('SG08', SG_X, '      b.setAttribute("aria-label", "random code for z" + (i + 1));', '', SG_NAMES),
    ('SG09', SG_X, '<select id="interp-mode" aria-label="interpolation mode">', '<select id="interp-mode">', SG_NAMES),
    ('SG10', SG_X, 'grid-template-columns: 3em minmax(5em, 220px) 4em;', 'grid-template-columns: 3em 220px 4em;',
     SG_NARROW),
    ('SG11', R, '.chart:not(.scatter){max-width:100%;height:auto}', '.chart:not(.scatter){}', SG_NARROW),
    ('SG12', IM, '"@media (prefers-reduced-motion:reduce){.moving img,.moving video{display:none} "',
     '"@media (prefers-reduced-motion:reduce){.moving img{display:none} "', SG_STILL),
    ('SG13', IM, 'autoplay loop muted playsinline controls>', 'autoplay loop muted playsinline>', SG_STILL),
    ('SG14', R, "    return (\"<!doctype html><html lang='en'><head>", "    return (\"<!doctype html><html><head>",
     SG_SAID),
    ('SG15', R, "+ (f\"; {mark[2]}\" if mark is not None else \"\"))", "+ (\"\" if mark is not None else \"\"))",
     SG_SAID),
    ('SG16', R, 'f"{_num(10 ** min(ys) if log_y else min(ys))}', 'f"{_num(min(ys))}', SG_SAID),
    ('SG17', R, '    if any(href.endswith("/eval.json") for _, links in results or () for _, href in links):',
     '    if False:', SG_POINTS),
    ('SG18', R, "<span class='vh'> (best)</span></td>\"", "</td>\"", SG_BEST),
    ('SG19', R, 'if i in (0, len(steps) - 1) or s % unit == 0]',
     'if i in (0, len(steps) - 1) or i % (unit // every) == 0]', SG_THIN),
    ('SG20', R, '    if k == 1:\n        return [steps[-1]]\n    unit = math.gcd(', '    unit = math.gcd(', SG_THIN),
    ('SG21', T, '            if self.cfg.keep_grids:\n                self._thin_grids()', '            pass', SG_THIN),
    ('SG22', "engine/sweep.py", '                want = of(digest)',
     '                want = protocols(root, phase, **{**options, "n_samples": n_samples})(digest)', SG_REUSE),
    ('SG23', EV, '        if all(k is not None and k in self._real for k in keys):', '        if False:', SG_REAL),
    ('SG24', EV, '(st := os.stat(f)).st_size, st.st_ctime_ns)', '(st := os.stat(f)).st_size)', SG_REAL),
    ('SG25', CK, '    except OlderFormatError:\n        return True\n', '', SG_OLD_KEPT),
    ('SG26', CK, '        if (old := _old_format_in(path)) is not None:  # (an UnpicklingError',
     '        if False:  # (an UnpicklingError', SG_OLD_KEPT),
    ('SG27', "engine/runtime.py", '        if (old := older_run(out, elsewhere=',
     '        if False and (old := older_run(out, elsewhere=', SG_OLD_RUN),
    ('SG28', T, '    if started and (old := older_run(run_dir, elsewhere=True)) is not None:', '    if False:',
     SG_OLD_RUN),
    ('SG29', T, '    except OlderFormatError:  # kept for the version that wrote it',
     '    except KeyError:  # kept for the version that wrote it', SG_STRAY),
    ('SG30', CK, '            and not (cfg.variant == "clr" and cfg.lambda_z == 0 and not cfg.init_from))',
     '            and not False)', SG_EARLIER),
    ('SG31', CK, 'cfg.variant == "clr" and cfg.lambda_z == 0 and not cfg.init_from))',
     'cfg.variant == "clr" and cfg.lambda_z == 0))', SG_EARLIER),
    ('SG32', CFG, 'self.model.use_same_D and self.lambda_GAN == 0 and self.lambda_GAN2 > 0:',
     'self.model.use_same_D and False:', SG_TRAINABLE),
    ('SG33', CFG, '        if not any(getattr(self, n) > 0 for n in terms):  # cLR-GAN had no loss at all to backward',
     '        if False:', SG_TRAINABLE),
    # the review of SG01-SG33's mends
    ('SG34', R, '    unit = math.gcd(*steps[1:-1])', '    unit = steps[-1] - steps[-2]', SG_THIN),
    ('SG35', EV, 'for f in (s.path, s.b_path) if f is not None))', 'for f in (s.b_path or s.path,) if f is not None))',
     SG_BTOA),
    ('SG36', CK, '    for path in [*latest, *(folder / epoch_name(e) for e in reversed(saved_epochs(folder)))]:',
     '    for path in sorted(folder.glob("*.pt")):', SG_STRAY),
    ('SG37', "engine/cli.py", '    except OlderFormatError:  # an import or a training',
     '    except KeyError:  # an import or a training', SG_OLD_KEPT),
    ('SG38', "engine/runtime.py", 'elsewhere=Path(options.get("out") or "").resolve() == Path(out).resolve()',
     'elsewhere=True', SG_OLD_RUN),
    ('SG39', M, '        if training:  # (BicycleGAN(cfg).train_step',
     '        if False:  # (BicycleGAN(cfg).train_step', SG_EARLIER),
    # the passes at scale
    ('SG40', CK, '            return None  # (one of this format says the run',
     '            pass  # (one of this format says the run', SG_FIRST),
    ('SG41', T, '                if len(good) > MORE_NAMED:\n                    break', '                pass',
     SG_OTHERS),
    ('SG42', "pipelines/files.py", '    if len(bad) <= limit or not _saving_checks or (path',
     '    if len(bad) <= limit or (path', SG_DRY_BAD),
    ('SG43', "engine/serve.py", '        if num > MAX_NUM:', '        if False:', SG_SERVE_NUM),
    # the second review
    ('SG44', CK, '    for path in [*latest, *(folder / epoch_name(e) for e in reversed(saved_epochs(folder)))]:',
     '    for path in latest or [folder / epoch_name(e) for e in reversed(saved_epochs(folder))]:', SG_FIRST),
    ('SG45', T, '        others = [o for o in epochs[:1] + best + epochs[1:] if o[2] != resume_path.name]',
     '        others = [o for o in epochs + best if o[2] != resume_path.name]', SG_OTHERS),
    ('SG46', "pipelines/files.py", '    if len(bad) > NAMED_BAD and not _saving_checks:', '    if False:', SG_DRY_BAD),
    ('SG47', M, '            raise ConfigError(f"{e}. A model for inference',
     '            raise ConfigError(f"{e}" or f". A model for inference', SG_EARLIER),
    ('SG48', EV, '(st := os.stat(f)).st_size, st.st_ctime_ns)', '(st := os.stat(f)).st_size, st.st_mtime_ns)',
     SG_REWRITTEN),
    ('SH01', "engine/sweep.py", '                want = of(digest)',
     '                want = of(peek_checkpoint(path, "digest")[0])', SG_REUSE),
    ('SH02', R, '                rest = text[end:]', '                rest = b""', SH_PIECES),
    ('SH03', R, '                self.offset += end', '                self.offset += len(chunk)', SH_PIECES),
    ('SH04', T, '    return dropped  # (not a last line', '    return False  # (not a last line', SH_TRUNC),
    ('SH05', T, '        out.write(b"\\n" if keep else b"")', '        out.write(b"")', SH_TRUNC),
    ('SH06', "engine/compare.py", "No row for {html.escape(', '.join(r['name'] for r in rows if 'error' in r))}",
     "No row for {', '.join(r['name'] for r in rows if 'error' in r)}", SH_CAPTION),
    ('SH07', R, 'if img.width * img.height > MAX_GRID_PIXELS:  # (its header read alone)',
     'if img.width > MAX_GRID_PIXELS:  # (its header read alone)', SH_GRID),
    ('SH08', R, '    except Image.DecompressionBombError:  # (PIL', '    except FileNotFoundError:  # (PIL', SH_GRID),
    ('SH09', "engine/serve.py", '        with self.items_lock:\n            return list(self.items.values())',
     '        with self.lock:\n            return list(self.items.values())', SH_SERVE),
    ('SH10', "engine/serve.py", '        async with model_turn:\n            return await run_in_threadpool(fn, *args)',
     '        return await run_in_threadpool(fn, *args)', SH_SERVE),
    ('SH11', "engine/serve.py", 'chunks.__anext__(), max(left, 0))', 'chunks.__anext__(), None)', SH_SERVE),
    ('SH12', "engine/serve.py", '        return urlsplit(url)\n    except ValueError:',
     '        return urlsplit(url)\n    except TypeError:', SH_SERVE),
    ('SH13', "engine/serve.py", '        response.headers.update({"X-Frame-Options": "DENY",',
     '        response.headers.update({"X-Frame-Options": "SAMEORIGIN",', SH_SERVE),
    ('SH14', "engine/serve.py", 'log_level="warning", limit_concurrency=CONNECTIONS)', 'log_level="warning")',
     SH_SERVE),
    ('SH15', "bench/gpu_check.sh", 'OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2',
     'OUT=${TMPDIR:-/tmp}/gpu_check', SH_OUT),
    ('SH16', CK, '    check_weights_fit(state, cfg, training, path)\n', '', SH_FITS),
    ('SH17', CK, 'if training or n in ("G", "E")]', 'if n in ("G", "E")]', SH_FITS),
    ('SH18', CK, '    if training:  # (before the weights\' check', '    if False:  # (before the weights\' check',
     SH_FITS),
    ('SH19', "engine/download.py", '        self.budget.take(len(data))', '        self.budget.take(0)', SH_TAR),
    ('SH20', "engine/download.py", '        if e.errno == errno.ENAMETOOLONG and e.filename and _name_too_long(',
     '        if e.errno == errno.ENOENT and e.filename and _name_too_long(', SH_TAR),
    ('SH21', "kernels/norm_act.py", '    return not torch.compiler.is_compiling()', '    return True', SH_COMPILE),
    ('SH22', "kernels/_twoface.py", '\n' + ' ' * 40 + 'or torch._C._functorch.is_legacy_batchedtensor(grad))',
     ')', SH_BATCHED),
    ('SH23', "kernels/_twoface.py",
     ',\n' + ' ' * 21 + '"jvp": staticmethod(lambda ctx, *tangents: op._no_forward_ad())})', '})', SH_FWD),
    ('SH24', "kernels/_impl.py", '    def __prepare_scriptable__(self):', '    def _prepare_scriptable(self):',
     SH_SCRIPT),
    ('SH25', R, 'if isinstance(row, dict) and _whole(row.get("step")):',
     'if isinstance(row, dict) and "step" in row:', SH_EVAL_LOG),
    # the review of the mends (h-r)
    ('SH26', CK, '    if (short := next(_short_tensors(state), None)) is not None:', '    if short := None:', SH_FITS),
    ('SH27', CK, '            if next(_short_tensors(t), None) is not None:', '            if False:', SH_FITS),
    ('SH28', "engine/export.py", '        check_weights_fit({"nets": {"G": weights}}, run_cfg, False',
     '        (lambda *a, **k: None)({"nets": {"G": weights}}, run_cfg, False', SH_FITS),
    # (SH29: the Trainer's call, now _check_starting_point's, which the dry run shares)
    ('SH29', T, "        _check_resumed_shapes(resume_path)  # (from the weights' shapes alone",
     "        pass  # (from the weights' shapes alone", SH_RESUMED),
    ('SH30', "engine/download.py", ' and e.filename and _name_too_long(into, os.path.relpath(e.filename, into)):',
     ':', SH_LONG_DIR),
    ('SH31', "engine/serve.py", 'left = start + BODY_SECONDS + len(data) / BODY_RATE -',
     'left = start + BODY_SECONDS -', SH_SERVE),
    ('SH32', R, '    if img is None:\n        shown = None, why', '    if img is None:\n        return None, why',
     SH_GRID),
    # the commands in the shell around them (h-sh)
    ('SI01', CLI, SI_SAMPLE_LINES, SI_SAMPLE_SWAPPED, SI_REPORT[:1]),
    ('SI02', CLI, '    if command in ("train", "serve") or threading.current_thread()',
     '    if True or threading.current_thread()', SI_SIGNAL),
    ('SI03', CLI, '            if s is not None and signal.getsignal(s) is signal.SIG_DFL}',
     '            if s is not None}', SI_SIGNAL),
    ('SI04', CLI, '        for s, handler in replaced.items():\n            signal.signal(s, handler)',
     '        for s, handler in replaced.items():\n            pass', SI_SIGNAL),
    ('SI05', CLI, '        if _rank0():\n            kept =', '        if True:\n            kept =',
     SI_RANK),
    ('SI06', EX, '                if isinstance(cause, (KeyboardInterrupt, Stopped)):', '                if False:',
     SI_EXPORT),
    ('SI07', EX, '    for gone in stale_temps(out, f".tmp.{fmt}"):', '    for gone in []:', SI_EXPORT),
    ('SI08', AT, 'if "." not in tag and writer_gone(tag))', 'if "." not in tag)', SI_STALE),
    ('SI09', AT, 'if "." not in tag and writer_gone(tag))', 'if writer_gone(tag))', SI_STALE),
    ('SI10', AT, '    os.chmod(folder, 0o777 & ~UMASK | os.stat(folder).st_mode & stat.S_ISGID)',
     '    os.chmod(folder, 0o777 & ~UMASK)', SI_GROUP),
    ('SI11', "engine/download.py", '            usual_folder_mode(root)\n', '            pass\n',
     ["tests/test_download.py::test_an_archive_without_a_top_folder_gets_the_usual_permissions_and_old_extractions_go"]),
    ('SI12', RT, '        for gone in stale_temps(root, ".tmp"):', '        for gone in []:', SI_GROUP),
    ('SI13', TR, 'fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)',
     'fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)', SI_GROUP),
    ('SI14', TR, '            fd, read_only = os.open(path, os.O_RDONLY), True', '            raise', SI_GROUP),
    ('SI15', FI, 'hashlib.sha256(os.fsencode(os.path.realpath(folder)))',
     'hashlib.sha256(os.path.realpath(folder).encode())', SI_UTF8),
    ('SI16', IO, 'f.write(text.encode("utf-8", "surrogateescape"))', 'f.write(text.encode("utf-8"))', SI_UTF8),
    ('SI17', FI, '            if folder not in _UNSAVED:', '            if True:', SI_ONCE),
    ('SI18', CLI, '        homeward = isinstance(value, str) and (value == "~" or value.startswith("~/"))',
     '        homeward = isinstance(value, str) and value.startswith("~/")', SI_HOME),
    ('SI19', CLI, '        setattr(args, key, [home(v) for v in value] if isinstance(value, list) else home(value))',
     '        setattr(args, key, home(value))', SI_HOME),
    ('SI20', IO, '    line, erase = fit_line(line, optional, stream), erase_code()',
     '    line, erase = line, erase_code()', SI_BAR),
    ('SI21', IO, '(line + erase if erase else line.ljust(shown))', '(line + erase if erase else line)', SI_BAR),
    ('SI22', EX, '    opts.log_severity_level = 3\n', '', SI_ORT),
    # the review of the mends (h-r)
    ('SI23', CLI, '            say(sys.stderr, f"stopped by', '            sys.stderr.write(f"stopped by', SI_HUNG),
    ('SI24', CLI, '{"download": "the partial download is kept', '{"(none)": "the partial download is kept', SI_DL),
    ('SI25', CLI, '    if not held_stop(signum):', '    if True:', SI_HELD),
    ('SI26', EX, '                if isinstance(cause, (KeyboardInterrupt, Stopped)):',
     '                if not isinstance(cause, Exception):', SI_OWN),
    ('SI27', FI, '.encode("utf-8", "surrogateescape")).hexdigest()', '.encode()).hexdigest()', SI_RANKS),
    ('SI28', TR, '            if read_only:  # (NFS', '            if False:  # (NFS', SI_NFS),
    ('SI29', IO, '        columns = os.get_terminal_size(stream.fileno()).columns',
     '        columns = shutil.get_terminal_size().columns', SI_FIT),
    ('SI30', CLI, '    for key in PATH_OPTIONS & vars(args).keys():', '    for key in list(vars(args)):', SI_NAMES),
    ('SI31', CK, '    with signals_held():  # (import-official', '    if True:  # (import-official', SI_HELD),
    # a newcomer's day (h-doc)
    ('SI32', EV, '                if len(said) > 1:', '                if False:', SI_WEIGHTS),
    ('SI33', TR, '({plural(full, \'iteration\')})" if full > self.step else "")',
     '({plural(full, \'iteration\')})" if False else "")', SI_FINISHED),
    # scripts, notebooks, reproducibility (session 44)
    ('SJ01', CLI, '    if isinstance(code, int) and code - 128 in _STOPS:', '    if False:', SJ_LOOP),
    ('SJ02', CLI, '    atexit._run_exitfuncs()', '    pass', SJ_TERM),
    ('SJ03', CFG, 'ds = [k for k, net in (("netD", "D"), ("netD2", "D2")) if net in nets]',
     'ds = [k for k, net in (("netD", "D"), ("netD2", "D2"))]', SJ_VARIANT),
    ('SJ04', CFG, '        if "E" in nets:\n', '        if True:\n', SJ_VARIANT),
    ('SJ05', CFG, '            if self.num_Ds > 1 and any(', '            if any(', SJ_SCALE),
    ('SJ06', "engine/networks.py", '    cfg.check_networks(("E",))', '    pass', SJ_BUILD),
    ('SJ07', CFG, '        self.model.check_networks(self.trained_networks)\n', '', SJ_VARIANT),
    ('SJ08', AT, '    if _names_open_file(path):', '    if False:', SJ_STREAM),
    ('SJ09', AT, '        mode = os.stat(path).st_mode', '        mode = os.lstat(path).st_mode', SJ_STREAM),
    ('SJ10', CLI, '    args.stdout_json = args.json == "-"', '    args.stdout_json = False', SJ_DASH),
    ('SJ11', SV, '        if _loop_running():', '        if False:', SJ_LOOP_SV),
    ('SJ12', SV, '        sock.close()  # (a failed start', '        pass  # (a failed start', SJ_FAILED_SV),
    ('SJ13', T, '        traceback.clear_frames(error.__traceback__)', '        pass', SJ_GO),
    ('SJ14', T, '        if self._stop_requested:', '        if False:', SJ_REQUEST),
    ('SJ15', T, 'signal.getsignal(signal.SIGINT) is signal.default_int_handler:\n                raise',
     'signal.getsignal(signal.SIGINT) is None:\n                raise', SJ_LAST),
    ('SJ16', T, '    if splits := [s for s in ("train", "val", "test") if (run_dir / s).is_dir()]:',
     '    if splits := []:', SJ_OUT),
    ('SJ17', T, '    if runs:\n        shown', '    if False:\n        shown', SJ_OUT),
    ('SJ18', AT, '    fd = None if fcntl is None else _flock(Path(path), holder, busy, unguarded)',
     '    fd = None', SJ_HELD),
    ('SJ19', IO, '        remove_made(folder, made[0] if made else None)\n', '', SJ_MADE),
    ('SJ20', AT, '            Path(path).unlink(missing_ok=True)\n            os.close(fd)',
     '            os.close(fd)', SJ_HELD),
    ('SJ21', "engine/sample.py", '        owned.enter_context(held_folder(out, "sample", dist))', '',
     [SJ_HELD_UP + "[sample]"]),
    ('SJ22', "engine/interpolate.py", '    with held_folder(out, "interpolate", dist):', '    if True:',
     [SJ_HELD_UP + "[interpolate]"]),
    ('SJ23', IO, '    signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))', '', SJ_IMPORT),
    ('SJ24', T, '        python = "resume=True" if how == "--resume"', '        python = "" if how == "--resume"',
     SJ_PY),
    ('SJ25', CLI, "{'would continue' if args.dry_run else 'continuing'}", "continuing", SJ_DRY),
    ('SJ26', DM, '                writing = _temp_for(out / name)', '                writing = out / f".{name}.tmp"',
     SJ_DEMO),
    ('SJ27', DL, '        with _one_at_a_time(part.with_name(part.name + ".lock"),',
     '        with contextlib.nullcontext(part.with_name(part.name + ".lock"),', SJ_DL),
    # a researcher extending it (h-ext)
    ('SJ28', T, '        self.model = self._model_cls(cfg, device=self.device)',
     '        self.model = BicycleGAN(cfg, device=self.device)', SJ_SUB),
    ('SJ29', T, '        extra = {"model_class": class_name(self._model_cls), "model_spec"',
     '        extra = {"model_spec"', SJ_SUB),
    ('SJ30', T, '!= class_name(self._model_cls):\n', '!= trained:\n', SJ_SUB),
    ('SJ31', T, '        elif not (isinstance(model_cls, type) and issubclass(model_cls, BicycleGAN)):',
     '        elif False:', SJ_SUB),
    ('SJ32', T, '                    self._on_log(row)',
     '                    pass', SJ_SUB),
    ('SJ33', T, '                    if not self._on_log_failed:', '                    if True:', SJ_FLAKY),
    ('SJ34', T, '                except Exception as e:  # (a tracker',
     '                except ZeroDivisionError as e:  # (', SJ_FLAKY),
    ('SJ35', CK, '    if clash := sorted(set(extra or {}) & (set(state) | ENGINE_ENTRIES)):', '    if clash := []:',
     SJ_EXTRA),
    ('SJ36', "engine/networks.py", '    if not isinstance(cfg, ModelConfig):', '    if False:', SJ_TYPES),
    ('SJ37', CFG, '        if own := sorted({f.name for f in dataclasses.fields(cfg)}',
     '        if own := [] and sorted({f.name for f in dataclasses.fields(cfg)}', SJ_TYPES),
    # a review of those mends (h-rv)
    ('SJ38', T, '        passed = self._stop.received if self._stop.signalled else None',
     '        passed = self._stop.received', SJ_NOTHING_LEFT),
    ('SJ39', T, '    def _handle(self, signum, frame):\n        self.signalled = True\n',
     '    def _handle(self, signum, frame):\n', SJ_AFTER_LAST),
    ('SJ40', T, '    _check_run_writable(run_dir)  # (creates nothing)\n    _check_not_other_folder(run_dir)\n',
     '    _check_run_writable(run_dir)  # (creates nothing)\n', SJ_OUT),
    ('SJ41', CK, '    if clash := sorted(set(extra or {}) & (set(state) | ENGINE_ENTRIES)):',
     '    if clash := sorted(set(extra or {}) & set(state)):', SJ_EXTRA),
    ('SJ42', SV, 'threading.main_thread() and callable(signal.getsignal(signal.SIGINT)):',
     'threading.main_thread() and False:', [SJ_SV_LOOP + "[asyncio.run]"]),
    ('SJ43', SV, '    except BaseException:  # a Ctrl+C; serve', '    except KeyboardInterrupt:  # a Ctrl+C; serve',
     [SJ_SV_LOOP + "[kernel, SIGTERM]"]),
    ('SJ44', AT, '    for _ in range(40):  # (the kernel', '    for _ in range(1):  # (the kernel', SJ_STREAM),
    # session 45: transient refusals exit 75, --model_cls, G once on both codes, the CPU fallback's half
    # precision, the interpreter's mode, the lazy packages
    ('SK01', CLI, 'return 75 if getattr(e, "transient", False) else 2', 'return 2', SK_75),
    ('SK02', IO, 'folder of its own (--out)", transient=True)', 'folder of its own (--out)")',
     ["tests/test_compare.py::test_a_compare_into_a_folder_being_written_exits_75_and_a_bad_option_2"]),
    ('SK03', DL, 'later = e.code >= 500 or e.code in (408, 429)', 'later = e.code >= 500',
     [SK_DL + "the_cli_exits_75_where_a_later_try_may_pass_and_2_where_it_cannot"]),
    ('SK04', DL, '{by_hand}{_kept(part)}",\n                                        transient=True)',
     '{by_hand}{_kept(part)}",\n                                        transient=False)',
     [SK_DL + "the_cli_exits_75_without_the_network_and_2_for_a_damaged_archive"]),
    ('SK05', T, 'or choose another --out", transient=True)', 'or choose another --out")', SK_75),
    ('SK06', "engine/serve.py", 'transient=e.errno == errno.EADDRINUSE', 'transient=False',
     ["tests/test_serve.py::test_a_port_in_use_exits_75_and_an_address_not_this_machines_2"]),
    ('SK07', DL, 'raise OutputError(f"cannot write {_origin(part)}: {e.strerror or e}") from None', 'raise',
     [SK_DL + "a_disk_that_refuses_the_partial_files_record_is_the_disks_error_not_the_networks"]),
    ('SK08', M, 'isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd))',
     'isinstance(m, nn.modules.dropout._DropoutNd)', SK_G1),
    ('SK09', M, 'isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd))',
     'isinstance(m, nn.modules.batchnorm._BatchNorm)', SK_G1),
    ('SK10', M, 'n <= self.ONE_G_CALL_MAX', 'n < self.ONE_G_CALL_MAX', SK_G1),
    ('SK11', M, 'fake_enc, fake_rand, *fake2 = self.G(', 'fake_rand, fake_enc, *fake2 = self.G(', SK_G1),
    ('SK12', CLI, '    if not issubclass(cls, BicycleGAN):\n', '    if False:\n', SK_CLS),
    ('SK13', CLI, 'if here not in (os.path.abspath(p) for p in sys.path):', 'if False:', SK_CLS),
    ('SK14', CLI, 'if not step or trained == class_name(model_cls):', 'if trained == class_name(model_cls):', SK_CLS),
    ('SK15', CLI, 'if not step or trained == class_name(model_cls):', 'if True:', SK_CLS),
    ('SK16', CLI, 'launch = train_launch(world, args.model_cls)', 'launch = train_launch(world)', SK_CLS),
    ('SK17', T, ' + " --skip_bad" * skip_bad + model_option(class_spec(self._model_cls))\n',
     ' + " --skip_bad" * skip_bad\n', SK_CLS),
    ('SK18', T, 'train_launch(self.world, class_spec(self._model_cls))', 'train_launch(self.world)', SK_CLS),
    ('SK19', CLI, 'module.endswith(".py")', 'False', SK_CLS),
    ('SK20', SK_NA, 'if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):', 'if False:', SK_HALF),
    ('SK21', SK_NA, '            buffer.copy_(copy)', '            pass', SK_HALF),
    ('SK22', SK_NA, 'buffer.copy_(copy)\n    return y.to(x.dtype)', 'buffer.copy_(copy)\n    return y',
     SK_HALF),
    ('SK23', "kernels/_impl.py", 'return _interpreter_asked() and _built_interpreted() is not False',
     'return _interpreter_asked()', SK_INTERP),
    ('SK24', "kernels/_impl.py", 'return bool(runtime.interpret) if runtime is not None else', 'return', SK_INTERP),
    ('SK25', "engine/__init__.py", 'if not (name in _MODULE_OF and isinstance(value, types.ModuleType)):', 'if True:',
     [SK_LAZY + "the_packages_names_are_their_objects_whichever_submodule_was_imported_first"]),
    ('SK27', M, '                    codes.append(z2.to(z_enc.dtype))', '                    pass', SK_G1),
    ('SK28', M, '            or getattr(m, "running_mean", None) is not None for m in', '            for m in',
     ["tests/test_model.py::test_g_once_on_both_codes_looks_at_gs_layers_not_the_config"]),
    ('SK29', M, '            if fake2 is None:  # (after', '            if False:  # (after', SK_G1),
    ('SK30', DL, 'if isinstance(reason := getattr(e, "reason", e), ssl.SSLCertVerificationError):',
     'if False:', [SK_DL + "a_certificate_that_cannot_be_verified_is_said_once_with_exit_2"]),
    ('SK31', CLI, '_NOT_ABBREVIATIONS = {"--model", "--eval"}', '_NOT_ABBREVIATIONS = {"--model", "--eval", "--name"}',
     ["tests/test_commands.py::test_a_reference_option_abbreviates_ours_of_the_same_meaning"]),
    ('SK32', CLI, '    if scripts and args.model_cls is not None and name == (', '    if False and name == (', SK_CLS),
    ('SK33', CLI, 'scripts = local or module == "__main__"', 'scripts = local', SK_CLS),
    ('SK26', CLI, '        if "torch" not in sys.modules:\n', '        if False:\n',
     [SK_ST + "a_ctrl_c_while_torch_imports_ends_the_command_quietly_by_sigint"]),
    # session 46: a plain-http mirror's TLS, compare's inputs, lr's bound, fp16 on a CPU, interpolate's refs, the
    # sweep's protocol as resolved, unreadable grids, a run folder named checkpoints
    ('SL01', DL, '                if getattr(reason, "reason", None) in TLS_MISMATCH:', '                if False:',
     [SK_DL + "an_https_address_of_a_plain_http_server_is_said_once_with_exit_2"]),
    ('SL02', CMP, '    if cfg.data.preprocess in RESIZING:', '    if True:', [SL_CMP + "refusals_before_any_work"]),
    ('SL03', CMP, 'coded=any(model.cfg.model.nz for _, model in good)', 'coded=True',
     [SL_CMP + "n_samples_is_refused_where_no_model_has_z_and_taken_where_one_has"]),
    ('SL04', CMP, 'if any(r.get("n_samples") == 1 for r in done) and drawn != 1 else', 'if False else',
     [SL_CMP + "page_says_the_samples_drawn_when_the_first_model_has_no_z"]),
    ('SL05', CFG, '_real("lr", self.lr, 0, 1, low_open=True)', '_real("lr", self.lr, 0, low_open=True)', CONFIG),
    ('SL06', T, 'if cfg.amp == "fp16" and self.device.type == "cpu":', 'if False:',
     ["tests/test_user_paths.py::test_fp16_on_the_cpu_says_it_is_slower"]),
    ('SL07', IP, '    if isinstance(refs, str):', '    if False:', SL_IP),
    ('SL08', IP, 'if len(numbers) < len(refs) or any(n < 0 for n in numbers):', 'if any(n < 0 for n in numbers):',
     SL_IP),
    ('SL09', SW, '            "skip_bad": data.skip_bad}', '            "skip_bad": options.get("skip_bad")}', SL_SW),
    ('SL10', SW, '"metrics": chosen_metrics(options.get("metrics"), cfg, root, phase),',
     '"metrics": options.get("metrics"),', SL_SW),
    ('SL11', R, '    except (OSError, SyntaxError, ValueError, TypeError) as e:', '    except SyntaxError as e:',
     ["tests/test_report.py::test_an_unreadable_grid_is_named_in_the_page_not_fatal"]),
    ('SL12', R, 'Path(path).read_text(encoding="utf-8", errors="replace")', 'Path(path).read_text(encoding="utf-8")',
     ["tests/test_report.py::test_a_line_of_eval_log_not_utf8_is_left_out_as_a_line_cut_short"]),
    ('SL13', R, '            keep.add(grid_key(p, w))  # (in the try: its stat() again)\n',
     '            pass\n', [SL_R + "grid_encoding_is_cached_between_rewrites"]),
    ('SL14', CK, 'return folder.parent if folder.name == "checkpoints" and not (folder / "checkpoints").is_dir() else',
     'return folder.parent if folder.name == "checkpoints" else',
     ["tests/test_sweep.py::test_a_run_folder_named_checkpoints_is_swept_as_a_run"]),
    # fp16's skipped steps and loss-scale floor, Adam's state at saves, a divergence's advice, make-demo killed
    ('SL15', T, 'AMP_SCALE_FLOOR = 1.0', 'AMP_SCALE_FLOOR = 0.0',
     [REL + "fp16_gradients_non_finite_at_every_step_stop_the_run_naming_the_network"]),
    ('SL16', T, 'losses = self._leave_out(losses, self.model.amp_skipped)', 'pass', SL_SKIP),
    ('SL17', T, 'kept = count - record.get("amp_skipped", 0)', 'kept = count', SL_SKIP),
    ('SL18', CK, '    bad = model.nonfinite(optimizers=True)\n', '    bad = model.nonfinite()\n',
     [REL + "inf_adam_moments_stop_the_run_at_a_save"]),
    ('SL19', T, 'if (loss in losses or not losses) and getattr(cfg, opt) > WEIGHT_FAR * getattr(TrainConfig, opt)]',
     'if False]', [REL + "a_save_refuses_non_finite_loss_sums_and_names_the_loss_weight"]),
    ('SL20', T, '        if bad := {k: float(v) for own in', '        if bad := {} and {k: float(v) for own in',
     [REL + "a_save_refuses_non_finite_loss_sums_and_names_the_loss_weight"]),
    ('SL21', T, '            self._write_row(log, {}, lr, None, diverged=True)  # (no steps',
     '            pass  # (no steps', [REL + "a_huge_learning_rate_ends_with_exit_2_and_no_nan_checkpoint"]),
    ('SL22', FI, '    _refuse_demo_being_written(folders)\n', '    pass\n',
     ["tests/test_pipelines_errors.py::test_a_split_make_demo_was_killed_writing_is_refused_naming_it"]),
    ('SL23', DM, '    (out / "palettes.json").unlink(missing_ok=True)\n    return True', '    return True',
     ["tests/test_demo.py::test_a_make_demo_killed_rewriting_a_set_leaves_no_old_palettes_beside_new_images"]),
    ('SL24', DM, 'if not marked and _differs(writing, out / name):', 'if not marked:',
     ["tests/test_demo.py::test_make_demo_of_the_same_data_again_leaves_the_set_readable_throughout"]),
    ('SL25', EV, 'find_layout(self.root, self.phase, layout)  # (a split', 'pass  # (a split',
     ["tests/test_validation.py::test_what_the_data_cannot_measure_is_refused_before_the_first_step"]),
    ('SL26', R, '"diverged", "amp_skipped")', '"diverged")',
     [SL_R + "an_fp16_runs_skipped_steps_are_charted_as_a_count_not_as_a_loss"]),
    # a kill between checkpoints' writes: the epoch's written again, the newest resumed, --resume auto's restart
    ('SL27', T, 'if self.dist.main_says(self._epoch_checkpoint_owed):', 'if False:',
     [REL + "a_kill_while_an_epochs_checkpoint_is_written_loses_it_not"]),
    ('SL28', CK, 'is not None and step > at:', 'is not None and step >= at:', SL_NEWER),
    ('SL29', T, 'else newest_beside(ckpt_path) if resume else None', 'else ckpt_path if resume else None', SL_NEWER),
    ('SL30', T, '(other := _other_config(run_dir, restart)) is None:\n                return True\n',
     '(other := _other_config(run_dir, restart)) is None:\n                pass\n', SL_AGAIN),
    ('SL31', T, 'for k, was, now in pairs if not same(was, now)]', 'for k, was, now in pairs if False]', SL_AGAIN),
    ('SL32', T, 'fresh = restart is not None and not (ckpt_path.parent / BEST).exists()',
     'fresh = restart is not None', SL_AGAIN),
    # the diff review's mends: a resume of Adam's inf moments, the marker line's speed
    ('SL33', T, '        if bad := self.model.nonfinite(optimizers=True):\n            # (Adam',
     '        if False:\n            # (Adam', [REL + "inf_adam_moments_stop_the_run_at_a_save"]),
    ('SL34', T, '**({"img_per_s": round(ips, 2)} if ips is not None else {}),', '"img_per_s": round(ips or 0, 2),',
     [REL + "a_huge_learning_rate_ends_with_exit_2_and_no_nan_checkpoint"]),
    # the long-runs pass: a resume reads a long log once, from its end
    ('LR01', T, 'write_report(self.run_dir, cache=self.report_cache)  # (the run',
     'write_report(self.run_dir)  # (the run', LR_ONCE),
    ('LR02', T, '    if not dropped and ends:', '    if False:', LR_END),
    ('LR05', T, '                kept.append(line)\n', '                dropped = True\n', LR_STEPLESS),
    ('LR03', T, '        rest = first\n', '        rest = b""\n', LR_END),
    ('LR04', T, '            offset -= len(line) + 1\n', '            offset -= len(line)\n', LR_END),
    # session 52: a stopped sample's resume (SR), file_sha256 (FS), remove_stale (RS), check_fallback_mode (FM)
    ('SR01', SA, '    except (OSError, ValueError):\n        return None\n    return saved',
     '    except OSError:\n        return None\n    return saved', SR_DAMAGED),
    ('SR02', SA, '    return saved if isinstance(saved, dict) else None', '    return saved', SR_DAMAGED),
    ('SR03', SA, 'earlier is not None and {k: v for k, v in earlier.items() if k != "inputs"} == {',
     'earlier is not None and {k: v for k, v in earlier.items()} == {', SR_ALL),
    ('SR04', SA, 'earlier is not None and {k: v for k, v in earlier.items() if k != "inputs"} == {',
     'earlier is not None or {k: v for k, v in earlier.items() if k != "inputs"} == {', SR_ALL),
    ('SR05', SA, '            break\n        same.append', '            continue\n        same.append', SR_ALL),
    ('SR06', SA, 'if not (isinstance(a, list) and a[0::2] == b[0::2]):', 'if not isinstance(a, list):', SR_ALL),
    ('SR07', SA, 'if not (isinstance(a, list) and a[0::2] == b[0::2]):', 'if not (a[0::2] == b[0::2]):', SR_DAMAGED),
    ('SR08', SA, 'same.append(a[1::2] == b[1::2])', 'same.append(True)', SR_ALL),
    ('SR09', SA, 'return same + [False] * (len(new) - len(same))', 'return same + [True] * (len(new) - len(same))',
     SR_ALL),
    ('SR10', SA, 'for a, b in zip(old if isinstance(old, list) else [], new):', 'for a, b in zip(old or [], new):',
     SR_ALL),
    ('SR11', SA, 'same.append(a[1::2] == b[1::2])', 'same.append(a == b)', SR_ALL),
    ('SR12', SA, 'same.append(a[1::2] == b[1::2])',
     'same.append(a[1::2] == b[1::2])\n        if not same[-1]:\n            break', SR_ALL),
    ('SR13', SA, 'f.seek(-len(PNG_END), os.SEEK_END)', 'f.seek(-len(PNG_END) + 1, os.SEEK_END)', SR_ALL),
    ('SR14', SA, '            return f.read() == PNG_END', '            return True', SR_ALL),
    ('SR15', SA, '    except OSError:  # (none there, a folder, or shorter than the chunk)',
     '    except FileNotFoundError:  # (none there, a folder, or shorter than the chunk)', SR_ALL),
    ('SR16', SA, 'PNG_END = b"\\x00\\x00\\x00\\x00IEND\\xaeB`\\x82"', 'PNG_END = b"IEND\\xaeB`\\x82"', SR_ALL),
    ('SR17', SA, 'return [same[i] and all(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]',
     'return [same[i] and any(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]', SR_ALL),
    ('SR18', SA, 'return [same[i] and all(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]',
     'return [same[i] and all((out / rel).is_file() for _, rel in files_of(i)) for i in range(total)]', SR_ALL),
    ('SR19', SA, 'return [same[i] and all(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]',
     'return [same[i] for i in range(total)]', SR_ALL),
    ('SR20', SA, 'return [same[i] and all(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]',
     'return [all(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]', SR_ALL),
    ('SR21', SA, 'same = _same_inputs(_earlier_record(out), record[0])', 'same = _same_inputs(None, record[0])',
     SR_ALL),
    ('SR22', SA, '        kept = dist.main_says(written_before)', '        kept = written_before()', SR_TR),
    ('SR23', SA, 'if progress and dist.main and any(kept):', 'if progress and dist.main:', SR_ALL),
    ('SR24', SA, 'if progress and dist.main and any(kept):', 'if progress and any(kept):', SR_TR),
    ('SR25', SA, '            if kept[i]:  # (its codes drawn', '            if False:  # (its codes drawn', SR_ALL),
    ('SR26', SA, '            if at != i:  # the share\'s first', '            if at is None:  # the share\'s first',
     SR_ALL),
    ('SR27', SA, '                loader.set_epoch(0, i)  # a pass from it',
     '                loader.set_epoch(0, 0)  # a pass from it', SR_ALL),
    ('SR28', SA, '            batch, at = next(batches), i + 1', '            batch, at = next(batches), i',
     [SR + "the_inputs_to_make_are_read_in_one_pass_from_each_first_one"]),
    ('SR29', SA, 'return loader.samples[i].path, None, columns', 'return None', SR_ALL),
    ('SR30', SA, '{Path(rel).name for i in range(total) if not kept[i] for _, rel in files_of(i)}',
     '{Path(rel).name for i in range(total) if kept[i] for _, rel in files_of(i)}', SR_ALL),
    ('SR31', SA, '            _remove(out / "images", {', '            set(), ({', SR_ALL),
    ('SR32', SA, '                temps.remove_stale(out / rel)', '                pass', SR_ALL),
    ('SR33', SA, 'for rel in (rel for i in range(total) if kept[i] for _, rel in files_of(i)):',
     'for rel in (rel for i in range(total) if not kept[i] for _, rel in files_of(i)):', SR_ALL),
    ('SR34', SA, '            drop_gallery(out)  # (the earlier record', '            pass  # (the earlier record',
     [SR + "a_call_of_another_recipe_makes_every_image_again"]),
    ('SR35', SA, '{Path(rel).name for i in range(total) if not kept[i] for _, rel in files_of(i)}',
     '{Path(rel).name for i in range(share.stop) if not kept[i] for _, rel in files_of(i)}',
     [SR + "rank_0_removes_the_earlier_recipes_images_of_every_ranks_inputs"]),
    ('SR36', SA, '            write_json(out / SAMPLE_RECORD, record[0], what="record of the sampled images")',
     '            pass', SR_ALL),
    ('SR37', SA, '            except OSError as e:\n                raise OutputError(f"cannot remove',
     '            except FileNotFoundError as e:\n                raise OutputError(f"cannot remove', SR_ALL),
    ('SR38', SA, '        for name in set(os.listdir(folder)) & names:', '        for name in names:', SR_ALL),
    ('SR39', SA, '(folder / name).unlink(missing_ok=True)', '(folder / name).unlink()', SR_ALL),
    ('SR40', SA, '    if folder.is_dir():\n        for name in set', '    if folder.exists():\n        for name in set',
     [SR + "a_file_named_images_in_the_folder_is_refused_in_a_line"]),
    ('FS01', IO, '        while block := f.read(1 << 20):\n            h.update(block)',
     '        if block := f.read(1 << 20):\n            h.update(block)', FS_T),
    ('FS02', IO, '            h.update(block)\n    return h.hexdigest()',
     '            h.update(block[1:])\n    return h.hexdigest()', FS_T),
    ('FS03', IO, '        while block := f.read(1 << 20):\n            h.update(block)',
     '        while block := f.read(1 << 20):\n            h = hashlib.sha256(block)', FS_T),
    ('RS01', AT, '            if is_stale(temp):  # (another live', '            if True:  # (another live', RS_T),
    ('RS02', AT, '                temp.unlink(missing_ok=True)\n\n\ndef temp_files',
     '                temp.unlink()\n\n\ndef temp_files', RS_T),
    ('RS03', AT, '        for temp in self.of(path):\n            if is_stale',
     '        for temp in self.of(path)[1:]:\n            if is_stale', RS_T),
    ('RS04', AT, '            if is_stale(temp):  # (another live',
     '            if not is_stale(temp):  # (another live', RS_T),
    ('RS05', AT, '(temps if temps is not None else TempFiles(path.parent)).remove_stale(path)',
     'TempFiles(path.parent).remove_stale(path)', RS_T),
    ('RS06', AT, '        for temp in self.of(path):\n            if is_stale',
     '        for temp in self.of(path)[:1]:\n            if is_stale', RS_T),
    ('FM01', RT, '    except ValueError as e:\n        raise ConfigError(str(e)) from None\n    if mode == "strict"',
     '    except KeyError as e:\n        raise ConfigError(str(e)) from None\n    if mode == "strict"', FM_T),
    ('FM02', RT, 'if mode == "strict" and impl == "auto" and not runs_triton(device):',
     'if mode == "strict" and not runs_triton(device):', FM_T),
    ('FM03', RT, 'if mode == "strict" and impl == "auto" and not runs_triton(device):',
     'if mode == "strict" and impl == "auto":', FM_T),
    ('FM04', RT, 'if mode == "strict" and impl == "auto" and not runs_triton(device):',
     'if mode != "allow" and impl == "auto" and not runs_triton(device):', FM_T),
    ('FM05', RT, '(pip install \'bicyclegan[triton]\')" if device.type == "cuda" else',
     '(pip install \'bicyclegan[triton]\')" if device.type != "cuda" else', FM_T),
    ('FM06', RT, '    check_fallback_mode(layer_impl(cfg, device), device)',
     '    check_fallback_mode(cfg.model.impl, device)', FM_T),
    ('FM07', M, '            check_fallback_mode(self.impl, device)', '            pass', FM_T),
    ('FM08', RT, '    check_fallback_mode(layer_impl(cfg, device), device)', '    pass', FM_T),
    # session 53: DALI's draws and its pass from a batch (DD)
    ('DD01', DA, 'return fn.cast(dmath.min(dmath.floor(u * (d + 1)), d) / scale, dtype=types.FLOAT)',
     'return dmath.min(dmath.floor(u * (d + 1)), d) / scale', DD_ALL),
    ('DD02', DA, 'return fn.cast(dmath.min(dmath.floor(u * (d + 1)), d) / scale, dtype=types.FLOAT)',
     'return fn.cast(dmath.min(dmath.floor(u * d), d) / scale, dtype=types.FLOAT)', DD_ALL),
    ('DD03', DA, 'return fn.cast(dmath.min(dmath.floor(u * (d + 1)), d) / scale, dtype=types.FLOAT)',
     'return fn.cast(dmath.floor(u * (d + 1)) / scale, dtype=types.FLOAT)', DD_ALL),
    ('DD04', DA, 'return fn.cast(dmath.min(dmath.floor(u * (d + 1)), d) / scale, dtype=types.FLOAT)',
     'return fn.cast(dmath.min(dmath.floor(fn.cast(u, dtype=types.FLOAT) * (d + 1)), d) / scale, dtype=types.FLOAT)',
     DD_ALL),
    ('DD05', DA, 'indices = [self.positions[min(first + j, n - 1)] for j in range(self.batch_size)]',
     'indices = [self.positions[first + j] for j in range(self.batch_size)]', DD_ALL),
    ('DD06', DA, 'indices = [self.positions[min(first + j, n - 1)] for j in range(self.batch_size)]',
     'indices = [self.positions[(first + j) % n] for j in range(self.batch_size)]', DD_ALL),
    ('DD07', DA, 'n, first = len(self.positions), info.iteration * self.batch_size',
     'n, first = len(self.positions), (info.iteration + 1) * self.batch_size', DD_ALL),
    ('DD08', DA, 'indices = [self.positions[min(first + j, n - 1)] for j in range(self.batch_size)]',
     'indices = [self.positions[min(first + j, n - 1)] for j in range(self.batch_size - 1)]', DD_ALL),
    ('DD09', DA, 'indices = [self.positions[min(first + j, n - 1)] for j in range(self.batch_size)]',
     'indices = [min(first + j, n - 1) for j in range(self.batch_size)]', DD_ALL),
    ('DD10', DA, 'sharding.sample_rng(self.seed, self.epoch, int(i)).random(3) for i in indices])',
     'sharding.sample_rng(self.seed, self.epoch, int(i)).random(3) for i in indices], dtype=np.float32)', DD_ALL),
    ('DD11', DA, 'sharding.sample_rng(self.seed, self.epoch, int(i)).random(3) for i in indices])',
     'sharding.sample_rng(self.seed, 0, int(i)).random(3) for i in indices])', DD_ALL),
    ('DD12', DA, 'sharding.sample_rng(self.seed, self.epoch, int(i)).random(3) for i in indices])',
     'sharding.sample_rng(self.seed, self.epoch, int(i)).random(3)[::-1] for i in indices])', DD_ALL),
    ('DD13', DA, 'if self.spec.augment and (self.spec.crops or self.spec.random_flip):  # (else',
     'if self.spec.augment and self.spec.crops:  # (else', DD_ALL),
    ('DD14', DA, 'if self.spec.augment and (self.spec.crops or self.spec.random_flip):  # (else',
     'if self.spec.crops or self.spec.random_flip:  # (else', DD_ALL),
    ('DD15', DA, 'if self.spec.augment and (self.spec.crops or self.spec.random_flip):  # (else',
     'if self.spec.augment:  # (else', DD_ALL),
    ('DD16', DA, '                draw = u[0], u[1]\n', '                draw = u[1], u[0]\n', DD_ALL),
    ('DD17', DA, '                if self.spec.random_flip:\n                    mirror',
     '                if True:\n                    mirror', DD_ALL),
    ('DD18', DA, 'mirror = fn.cast(u[2] < 0.5, dtype=types.INT32)', 'mirror = fn.cast(u[2] >= 0.5, dtype=types.INT32)',
     DD_ALL),
    ('DD19', DA, 'mirror = fn.cast(u[2] < 0.5, dtype=types.INT32)', 'mirror = fn.cast(u[2] <= 0.5, dtype=types.INT32)',
     DD_ALL),
    ('DD20', DA, 'mirror = fn.cast(u[2] < 0.5, dtype=types.INT32)', 'mirror = fn.cast(u[1] < 0.5, dtype=types.INT32)',
     DD_ALL),
    ('DD21', DA, '_Draws(positions, self.batch_size, self.seed, epoch), batch_info=True)',
     '_Draws(positions, self.batch_size, self.seed, 0), batch_info=True)', DD_ALL),
    ('DD22', DA, 'self.shard.order(epoch)), start * self.batch_size\n',
     'self.shard.order(epoch)), start\n', DD_ALL),
    ('DD23', DA, '        positions = mine[base:]  # labels index this list',
     '        positions = mine  # labels index this list', DD_ALL),
    ('DD24', DA, '        if start == len(self):  # (a reader',
     '        if False:  # (a reader', DD_ALL),
    ('DD25', DA, '        if start == len(self):  # (a reader',
     '        if start >= len(self) - 1:  # (a reader', DD_ALL),
    ('DD26', DA, '                or not np.array_equal(self._reads, positions) or self._stat',
     '                or False or self._stat', DD_ALL),
    ('DD27', DA, 'finished = True  # its pipeline', 'finished = False  # its pipeline', DD_ALL),
    ('DD28', DA, 'if not np.array_equal(labels, np.arange(done - base, done - base + n)):',
     'if not np.array_equal(labels, np.arange(done, done + n)):', DD_ALL),
    ('DD29', DA, 'if not np.array_equal(labels, np.arange(done - base, done - base + n)):', 'if False:', DD_ALL),
    ('DD30', DA, '                        base = done\n', '                        base = base\n', DD_ALL),
    ('DD31', DA, '            for _ in range(len(self) - start):', '            for _ in range(len(self)):', DD_ALL),
    ('DD32', DA, 'batch["paths"] = [self.samples[positions[j]].path for j in labels]',
     'batch["paths"] = [self.samples[mine[j]].path for j in labels]', DD_ALL),
    # session 53: download model's file already there (DM)
    ('DM01', DL, '    if not os.path.lexists(out):\n        return False',
     '    if not out.exists():\n        return False',
     DM_T),
    ('DM02', DL, 'peek_checkpoint(out, "source", "imported") if out.is_file() else (None, None)',
     'peek_checkpoint(out, "source", "imported")', DM_T),
    ('DM03', DL, '    if imported is None:\n        kind = ', '    if False:\n        kind = ', DM_T),
    ('DM04', DL, 'if fetched is not None and fetched != sorted(MODELS[name].values()):', 'if False:', DM_T),
    ('DM05', DL, 'if fetched is not None and fetched != sorted(MODELS[name].values()):',
     'if fetched is not None and fetched != sorted(MODELS[name]):', DM_T),
    ('DM06', DL, '               if isinstance(source, dict) else None)',
     '               if isinstance(source, dict) else [])',
     DM_T),
    ('DM07', DL, '            if _model_there(out, name):  # made by the download waited for',
     '            if out.exists():  # made by the download waited for', DM_T),
    ('DM08', DL, '    print(f"{out} is already there", file=sys.stderr)\n    return True', '    return True', DM_T),
    ('DM09', DL, '    except CheckpointError as e:\n        raise OutputError(f"{what} (',
     '    except OSError as e:\n        raise OutputError(f"{what} (', DM_T),
    ('DM10', DL, ".removesuffix('; move it away')", "", DM_T),
    ('DM11', DL, 'kind = "a folder" if out.is_dir() else', 'kind = "a folder" if out.exists() else', DM_T),
    # session 53: train's --out holding a page of no run (PG)
    ('PG01', T, '    if (run_dir / "report.html").exists():  # (a run', '    if False:  # (a run', PG_T),
    ('PG02', T, '    if not run_dir.is_dir() or any((run_dir / name).exists() for name in ("config.json", "log.jsonl", '
     '"checkpoints")):\n        return\n',
     '    if run_dir.is_dir() and (run_dir / "report.html").exists():\n        raise OutputError("a report.html")\n'
     '    if not run_dir.is_dir() or any((run_dir / name).exists() for name in ("config.json", "log.jsonl", '
     '"checkpoints")):\n        return\n', PG_T + SL_NEWER),
    # session 53: serve's SIGINT handler before its thread (SV)
    ('SV01', SV, '    thread = threading.Thread(target=run, name="bicyclegan serve", daemon=True)\n',
     '    thread = threading.Thread(target=run, name="bicyclegan serve", daemon=True)\n    thread.start()\n', SV_T),
    ('SV02', SV, '        if thread.ident is not None:  # (started;', '        if True:  # (started;', SV_T),
    ('SV03', SV, '        if thread.ident is not None:  # (started;',
     '        if thread.is_alive():  # (started;', SV_T),
    ('SV04', SV, '            server.handle_exit(signal.SIGINT, None)\n            ended.wait()\n        raise',
     '            ended.wait()\n        raise', SV_T),
    # session 53: LOCAL_RANK beside a caller's group, _launch_number (LN)
    ('LN01', RT, '        local_rank = _launch_number("LOCAL_RANK", rank % gpus if gpus else 0, 0)',
     '        local_rank = int(os.environ.get("LOCAL_RANK", rank % gpus if gpus else 0))', LN_T),
    ('LN02', RT, '        local_rank = _launch_number("LOCAL_RANK", rank % gpus if gpus else 0, 0)',
     '        local_rank = _launch_number("LOCAL_RANK", 0, 0)', LN_T),
    ('LN03', RT, '        local_rank = _launch_number("LOCAL_RANK", rank % gpus if gpus else 0, 0)',
     '        local_rank = _launch_number("LOCAL_RANK", rank % gpus if gpus else 0, 1)', LN_T),
    ('LN04', RT, '    text = os.environ.get(name)\n    if not text:',
     '    text = os.environ.get(name)\n    if text is None:',
     LN_T),
    ('LN05', RT, '    if value is None or value < low:', '    if value is None or value <= low:', LN_T),
    # session 53: kept measures that are not such measures (KM)
    ('KM01', EV, '            if not isinstance(c, dict):  # (another program',
     '            if False:  # (another program',
     KM_T),
    ('KM02', EV, 'if not (type(first) is int and type(end) is int and c["format"] == KEPT_FORMAT',
     'if not (c["format"] == KEPT_FORMAT', KM_T),
    ('KM03', EV, ' and isinstance(json.loads(c["recipe"]), dict)  # (take reads it)', '  # (take reads it)', KM_T),
    ('KM04', EV, ' and isinstance(json.loads(c["recipe"]), dict)  # (take reads it)',
     ' and json.loads(c["recipe"]) is not None  # (take reads it)', KM_T),
    ('KM05', EV, '                    and isinstance(c["got"], dict) and set(c["got"]) <= set(got)',
     '                    and set(c["got"]) <= set(got)', KM_T),
    ('KM06', EV, 'what = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]', 'what = []', KM_NOTE),
    ('KM07', EV, 'and isinstance(c["recipe"], str) and isinstance(json.loads', 'and isinstance(json.loads', KM_T),
    # session 53: sample's grouped writes, AtomicWrites (AG) and sample's use of it (AS)
    ('AG01', AT, '    def __exit__(self, *exc):\n        self.discard()',
     '    def __exit__(self, *exc):\n        pass', AG_T),
    ('AG02', AT, '        if self.closed:\n            return\n        given, path, fd, tmp = _begin(',
     '        if False:\n            return\n        given, path, fd, tmp = _begin(', AG_T),
    ('AG03', AT, '            if not self.closed:\n                self.staged.append(',
     '            if True:\n                self.staged.append(', AG_T),
    ('AG04', AT, '                write(f)\n        except BaseException as e:\n'
     '            Path(tmp).unlink(missing_ok=True)\n',
     '                write(f)\n        except BaseException as e:\n', AG_T),
    ('AG05', AT, '            Path(tmp).unlink(missing_ok=True)\n'
     '            raise _failed(e, self.what, path, self.error)',
     '            Path(tmp).unlink(missing_ok=True)\n            raise', AG_T),
    ('AG06', AT, '            with os.fdopen(fd, "wb") as f:\n                write(f)\n',
     '            f = os.fdopen(fd, "wb")\n            write(f)\n', AG_T),
    ('AG07', AT, '        Path(tmp).unlink(missing_ok=True)  # (discarded while it was written)\n',
     '', AG_T),
    ('AG08', AT, '                self.staged.append((given, path, tmp))\n                return\n',
     '                self.staged.append((given, path, tmp))\n', AG_T),
    ('AG10', AT, '            staged, self.staged, self.closed = self.staged, [], True\n        try:',
     '            staged, self.staged, self.closed = self.staged, [], False\n        try:', AG_T),
    ('AG11', AT, '            failures = [e for e in each(self._fsync, staged) if e is not None]',
     '            failures = []\n            each(self._fsync, staged)', AG_T),
    ('AG12', AT, '        try:\n'
     '            # every fsync\'s end waited for, also after one failed: no file closed or removed under a thread\'s'
     ' fsync\n'
     '            failures = [e for e in each(self._fsync, staged) if e is not None]\n'
     '        except BaseException:  # (a Ctrl-C while they ran)\n            _remove(staged)\n            raise\n'
     '        if failures:\n            _remove(staged)\n            raise failures[0]\n        done = 0\n'
     '        try:\n            for _, path, tmp in staged:\n                os.replace(tmp, path)\n'
     '                done += 1\n',
     '        done = 0\n        try:\n            for _, path, tmp in staged:\n'
     '                os.replace(tmp, path)\n                done += 1\n        except BaseException as e:\n'
     '            _remove(staged[done:])\n            raise _failed(e, self.what, staged[done][1], self.error)\n'
     '        try:\n            failures = [e for e in each(self._fsync, staged) if e is not None]\n', AG_T),
    ('AG13', AT, '        if failures:\n            _remove(staged)\n            raise failures[0]',
     '        if failures:\n            raise failures[0]', AG_T),
    ('AG46', AT, '        if failures:\n            _remove(staged)\n            raise failures[0]',
     '', AG_T),
    ('AG47', AT, '            return _failed(e, self.what, path, self.error)',
     '            raise _failed(e, self.what, path, self.error)', AG_T),
    ('AG14', AT, '            _remove(staged[done:])  # (those',
     '            _remove(staged)  # (those', AG_T),
    ('AG15', AT, '            _remove(staged[done:])  # (those renamed before are whole, in place)',
     '            _remove(staged[done:])\n'
     '            for _, p, _ in staged[:done]:\n'
     '                p.unlink()', AG_T),
    ('AG16', AT, '            _remove(staged[done:])  # (those',
     '            _remove(staged[done + 1:])  # (those', AG_T),
    ('AG17', AT, 'raise _failed(e, self.what, staged[done][1], self.error)',
     'raise _failed(e, self.what, staged[0][1], self.error)', AG_T),
    ('AG18', AT, 'raise _failed(e, self.what, staged[done][1], self.error)',
     'raise', AG_T),
    ('AG19', AT, '                os.replace(tmp, path)\n                done += 1',
     '                os.replace(tmp, path)', AG_T),
    ('AG20', AT, '            try:\n                _fsync_folder(folder)\n',
     '            try:\n                pass\n', AG_T),
    ('AG21', AT, '        for folder in {path.parent for _, path, _ in staged}:',
     '        for folder in [path.parent for _, path, _ in staged]:', AG_T),
    ('AG22', AT, '            except OSError as e:\n'
     '                raise self.error(f"cannot write {self.what} files into',
     '            except ZeroDivisionError as e:\n'
     '                raise self.error(f"cannot write {self.what} files into', AG_T),
    ('AG23', AT, '        return [given for given, _, _ in staged]',
     '        return [path for _, path, _ in staged]', AG_T),
    ('AG24', AT, '        for folder in {path.parent for _, path, _ in staged}:',
     '        for folder in {path.parent for _, path, _ in staged[:1]}:', AG_T),
    ('AG25', AT, '            try:\n                os.fsync(fd)\n            finally:\n                os.close(fd)\n',
     '            try:\n                pass\n            finally:\n                os.close(fd)\n', AG_T),
    ('AG26', AT, '        except OSError as e:\n'
     '            return _failed(e, self.what, path, self.error)\n'
     '        return None',
     '        except OSError as e:\n            return e\n        return None', AG_T),
    ('AG27', AT, '            finally:\n                os.close(fd)\n'
     '        except OSError as e:\n            return _failed',
     '            finally:\n                pass\n        except OSError as e:\n            return _failed', AG_T),
    ('AG28', AT, '        except OSError as e:\n'
     '            return _failed(e, self.what, path, self.error)\n'
     '        return None',
     '        except OSError as e:\n'
     '            return _failed(e, self.what, given, self.error)\n'
     '        return None', AG_T),
    ('AG29', AT, '            staged, self.staged, self.closed = self.staged, [], True\n        _remove(staged)',
     '            staged, self.staged = self.staged, []\n        _remove(staged)', AG_T),
    ('AG30', AT, '            staged, self.staged, self.closed = self.staged, [], True\n        _remove(staged)',
     '            staged, self.staged, self.closed = self.staged, [], True', AG_T),
    ('AG31', AT, '    for _, _, tmp in staged:\n        Path(tmp).unlink(missing_ok=True)\n',
     '    for _, _, tmp in staged[:1]:\n        Path(tmp).unlink(missing_ok=True)\n', AG_T),
    ('AG32', AT, '    for _, _, tmp in staged:\n        Path(tmp).unlink(missing_ok=True)\n\n\ndef _fsync_folder',
     '    for _, _, tmp in staged:\n        Path(tmp).unlink()\n\n\ndef _fsync_folder', AG_T),
    ('AG33', AT, 'if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):',
     'if e.errno not in (errno.ENOTSUP, errno.EBADF):', AG_T),
    ('AG34', AT, 'if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):',
     'if True:', AG_T),
    ('AG35', AT, 'if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):',
     'if False:', AG_T),
    ('AG36', AT, '    finally:\n        os.close(fd)\n\n\n@contextlib',
     '    finally:\n        pass\n\n\n@contextlib', AG_T),
    ('AG37', AT, '    fd = os.open(folder, os.O_RDONLY)',
     '    fd = os.open(folder, os.O_WRONLY)', AG_T),
    ('AG38', AT, "        if temps is not None and temps.folder != path.parent:  # (the target's",
     "        if False:  # (the target's", AB_T),
    ('AG39', AT, '    if kind := special_file(given):',
     '    if kind := special_file(path):', AB_T),
    ('AG40', AT, 'raise error(f"cannot write {what} {path}: {write_reason(e, path.parent)}") from e\n    return given',
     'raise\n    return given', AB_T),
    ('AG41', AT, '(error in (OSError, RuntimeError) or not isinstance(e, error))',
     '(not isinstance(e, error))', AB_T),
    ('AG42', AT, 'if isinstance(e, (OSError, RuntimeError)) and (error',
     'if isinstance(e, OSError) and (error', AB_T),
    ('AG43', AT, "{'; the previous one is intact' if path.exists() else ''}",
     '', AB_T),
    ('AG44', AT, '        said.__cause__ = e\n',
     '', AB_T),
    ('AG45', AT, '    return given, path, fd, tmp',
     '    return path, path, fd, tmp', AB_T),
    ('AS01', SA, '                pics = [job.result() for job in jobs]\n'
     '                group.commit(syncers.map)',
     '                pics = [job.result() for job in jobs]\n            group.commit(syncers.map)', AS_T),
    ('AS02', SA, '                group.commit(syncers.map)\n',
     '', AS_T),
    ('AS03', SA, '                group.commit(syncers.map)',
     '                group.commit()', AS_T),
    ('AS04', SA, '        for pool in (writers, syncers, placer):',
     '        for pool in (writers, placer):', AS_T),
    ('AS05', SA, '            owned.callback(pool.shutdown, wait=True, cancel_futures=True)',
     '            owned.callback(pool.shutdown, wait=False, cancel_futures=True)', AS_T),
    ('AS06', SA, 'AtomicWrites(what="sample image", error=OutputError, temps=temps)',
     'AtomicWrites(what="sample image", error=OutputError)', AS_T),
    ('AS07', SA, 'AtomicWrites(what="sample image", error=OutputError, temps=temps)',
     'AtomicWrites(what="sample image", temps=temps)', AS_T),
    ('AS08', SA, 'AtomicWrites(what="sample image", error=OutputError, temps=temps)',
     'AtomicWrites(error=OutputError, temps=temps)', AS_T),
    ('AS09', SA, '                wait(jobs)  # every one ended',
     '                pass  # every one ended', AS_T),
    ('AS10', SA, 'SYNCERS = 8',
     'SYNCERS = 1', AS_T),
    # session 54: DALI's pass behind its list's end, its pipeline let go and rebuilt, files read again (DS)
    ('DS01', DA, 'after = lines[lines.index("encountered:") + 1:] if', 'after = lines[lines.index("encountered:"):] if',
     DS_T),
    ('DS02', DA, '    return next((line for line in after if line), lines[-1] if lines else "")',
     '    return lines[-1] if lines else ""', DS_T),
    ('DS03', DA, '    return next((line for line in after if line), lines[-1] if lines else "")',
     '    return next((line for line in after), lines[-1] if lines else "")', DS_T),
    ('DS04', DA, '        self._seen = self._stat(positions)  # (before any read)\n', '', DS_T),
    ('DS05', DA, '"random_shuffle": False, "dont_use_mmap": True,', '"random_shuffle": False, "dont_use_mmap": False,',
     DS_T),
    ('DS06', DA, 'for path in (p for i in positions[:(_PREFETCH + 1) * self.batch_size]',
     'for path in (p for i in positions[:self.batch_size]', DS_T),
    ('DS07', DA, 'for path in (p for i in positions[:(_PREFETCH + 1) * self.batch_size]',
     'for path in (p for i in positions[:_PREFETCH * self.batch_size]', DS_T),
    ('DS08', DA, '                     for p in (self.samples[i].path, self.samples[i].b_path) if p is not None):',
     '                     for p in (self.samples[i].path,) if p is not None):', DS_T),
    ('DS09', DA, 'stats.append((st.st_ino, st.st_size, st.st_ctime_ns))', 'stats.append((st.st_ino, st.st_size))',
     DS_T),
    ('DS10', DA, 'stats.append((st.st_ino, st.st_size, st.st_ctime_ns))', 'stats.append((st.st_size, st.st_ctime_ns))',
     DS_T),
    ('DS11', DA, '        reasons = dict(self.skipped)  # (every', '        reasons = {}  # (every', DS_T),
    ('DS12', DA, 'tried = [self.samples[(i + step) % n].path for step in range(n)]',
     'tried = [self.samples[(i + step) % n].path for step in range(1, n)]', DS_T),
    ('DS13', DA, 'tried = [self.samples[(i + step) % n].path for step in range(n)]',
     'tried = [self.samples[step].path for step in range(n)]', DS_T),
    ('DS14', "pipelines/errors.py", 'return f"no sample could be decoded; tried:\\n{describe_bad(tried)}"',
     'return f"no sample could be decoded; tried:\\n{describe_bad(tried, limit=len(tried))}"', DS_T),
    ('DS15', CL, '        return {"error": none_decodes(skipped)}',
     '        return {"error": none_decodes([(p, "cannot decode") for p, _ in skipped])}', DS_T),
    ('DS16', DA, '        ahead = (_PREFETCH + 1) * self.batch_size\n', '        ahead = _PREFETCH * self.batch_size\n',
     DS_T),
    ('DS17', DA, 'left = order[start:start + ahead], set(order[start:].tolist())',
     'left = order[start:start + ahead], set()', DS_T),
    ('DS18', DA, 'behind = [i for i in order[listed:listed + ahead] if i not in left]',
     'behind = [i for i in order[:ahead] if i not in left]', DS_T),
    ('DS19', DA, '        if not bad and not passed:\n', '        if not bad:\n', DS_T),
    ('DS20', DA, '        if bad and not self.skip_bad:\n', '        if not self.skip_bad:\n', DS_T),
    ('DS21', DA, '        if self.skip_bad:\n            self._record_skips',
     '        if True:\n            self._record_skips', DS_T),
    ('DS22', DA, 'self._record_skips([(p, r) for _, p, r in bad + passed])',
     'self._record_skips([(p, r) for _, p, r in bad])', DS_T),
    ('DS23', DA, 'self._bad.update(i for i, _, _ in bad + passed)', 'self._bad.update(i for i, _, _ in bad)', DS_T),
    ('DS24', DA, 'for i, _, r in bad + passed if r == _DALI_FAILS)', 'for i, _, r in bad + passed if r != _DALI_FAILS)',
     DS_T),
    ('DS25', DA, '            self._dali_only.update(i for i, _, r in bad + passed if r == _DALI_FAILS)\n', '', DS_T),
    ('DS26', DA, '        self._retry = self._bad - self._dali_only\n', '        self._retry = set()\n', DS_T),
    ('DS27', DA, 'self._retry = self._bad - self._dali_only', 'self._retry = set(self._bad)', DS_T),
    ('DS28', DA, '            if not self._find_bad([i]):\n                self._bad.discard(i)',
     '            if self._find_bad([i]):\n                self._bad.discard(i)', DS_T),
    ('DS29', DA, '        self._check_open()  # (now: iter() of a closed loader is the error)\n', '', DS_T),
    ('DS30', DA, '        return self._epoch()\n\n    def _epoch(self):\n'
     '        # The pass takes its epoch at its first batch, as the torch loader\'s: taken at iter(), an iterator'
     ' made\n        # before set_epoch(e) read the epoch before, and of two made before either ran, the first run'
     ' the later.\n'
     '        epoch, start = self._begin_epoch()\n',
     '        return self._epoch(*self._begin_epoch())\n\n    def _epoch(self, epoch, start):\n', DS_T),
    ('DS31', DA, '            if self._active is not None:  # a pass, if empty',
     '            if False:  # a pass, if empty',
     DS_T),
    ('DS32', DA, '                self._free()\n            return\n',
     '                self._pipe = None\n            return\n',
     DS_T),
    ('DS33', DA, 'or not np.array_equal(self._reads, positions) or self._stat(positions) != self._seen):',
     'or not np.array_equal(self._reads, positions)):', DS_T),
    ('DS34', DA, '                if not finished or self._random:\n', '                if not finished:\n', DS_T),
    ('DS35', DA, '                if not finished or self._random:\n', '                if self._random:\n', DS_T),
    ('DS36', DA, '                        mine = self._recover(err, mine, done, base)',
     '                        mine = self._recover(err, mine, done, done)', DS_T),
    ('DS37', DA, '                        mine = self._recover(err, mine, done, base)',
     '                        mine = self._recover(err, mine, done, 0)', DS_T),
    ('DS38', DA, '        self._retry = self._bad - self._dali_only\n'
     '        mine, done = self._replace_bad(self.shard.order(epoch)), start * self.batch_size\n',
     '        mine, done = self._replace_bad(self.shard.order(epoch)), start * self.batch_size\n'
     '        self._retry = self._bad - self._dali_only\n', DS_T),
    # session 54: evaluate's and compare's kept measures at a result, a failed save and outputs not finite (EK)
    ('EK01', EV, '        self.kept_lost = ""  # (this run\'s)\n', '', EK_T),
    ('EK02', EV, '            except BaseException as e:\n                ended = e\n',
     '            except Exception as e:\n                ended = e\n', EK_T),
    ('EK03', EV, '                    end_count_line()  # (on a terminal the lines that follow began on the count\'s)',
     '                    pass  # (on a terminal the lines that follow began on the count\'s)', EK_T),
    ('EK04', EV, 'if isinstance(ended, DivergenceError) and keep is not None:',
     'if isinstance(ended, DivergenceError):',
     EK_T),
    ('EK05', EV, '                    drop_kept(keep, self.dist)\n', '                    pass\n', EK_T),
    ('EK06', EV, '                elif saver is not None:\n                    saver.end(',
     '                if saver is not None:\n                    saver.end(', EK_T),
    ('EK07', EV, 'saver.end(ended, got, n_out, has_enc)', 'saver.end(None, got, n_out, has_enc)', EK_T),
    ('EK08', EV, '        self.save_quietly(got, n_out, has_enc)\n        lost = self.lost()',
     '        if error is not None:\n            self.save_quietly(got, n_out, has_enc)\n'
     '        lost = self.lost()', EK_T),
    ('EK09', EV, '        if lost:\n            self.ev.kept_lost = lost\n', '', EK_T),
    ('EK10', EV, '        if error is None:\n            return\n        if lost:',
     '        if error is None and not lost:\n            return\n        if lost:', EK_T),
    ('EK11', EV, '            error.measures_lost = lost\n', '', EK_T),
    ('EK12', EV, '            if isinstance(error, Exception):\n                self._note(error.measures_lost)',
     '            if True:\n                self._note(error.measures_lost)', EK_T),
    ('EK13', EV, "            if isinstance(error, Exception):  # (a stop's line is the command's)",
     "            if True:  # (a stop's line is the command's)", EK_T),
    ('EK14', EV, '        elif self.saved and self.saved[0]:\n            # Where measures of this recipe',
     '        elif self.saved:\n            # Where measures of this recipe', EK_T),
    ('EK15', EV, '        if self.saved and self.saved[0]:\n            return (f"the measures made since',
     '        if self.saved:\n            return (f"the measures made since', EK_T),
    ('EK16', EV, '            self.failed = str(e) or type(e).__name__', '            self.failed = str(e)', EK_T),
    ('EK17', CLI, '            _progress(f"note: {ev.kept_lost or kept_note(kept)}")',
     '            _progress(f"note: {kept_note(kept)}")', EK_T),
    ('EK18', CLI, '    except Exception:  # (a full disk, a folder gone): the measures',
     '    except OSError:  # (a full disk, a folder gone): the measures', EK_T),
    ('EK19', CLI, '        raise\n    drop_kept(kept, d)\n', '        raise\n', EK_T),
    ('EK20', CLI, '    lost = getattr(stop, "measures_lost", None)\n', '    lost = None\n', EK_T),
    ('EK21', CLI, '    if lost and args.command in ("evaluate", "compare"):',
     '    if lost and args.command in ("evaluate",):', EK_T),
    ('EK22', CLI, '        if lost:\n            return f"{had} its eval.json, which',
     '        if False:\n            return f"{had} its eval.json, which', EK_T),
    ('EK23', CLI, '            "compare": "the measures of the models measured so far are kept: the same command '
     'goes on '
     'from them",\n', '', EK_T),
    ('EK24', CLI, '            kept = _kept(args, e) or "the files written so far are whole',
     '            kept = _kept(args) or "the files written so far are whole', EK_T),
    ('EK25', CLI, '        kept = _kept(args, e)\n        print(', '        kept = _kept(args)\n        print(', EK_T),
    ('EK26', CP, 'seed, keep=kept / key,', 'seed, keep=kept,', EK_T),
    ('EK27', CP, '                if lost or ev.kept_lost:\n', '                if ev.kept_lost:\n', EK_T),
    ('EK28', CP, '"the others\' measures are kept: the same command goes on from them"])',
     '"the same command goes on from them"])', EK_T),
    ('EK29', CP, '                if isinstance(e, Exception) and kept.exists():  # (another error',
     '                if kept.exists():  # (another error', EK_T),
    ('EK30', CP, '                if isinstance(e, Exception) and kept.exists():  # (another error',
     '                if isinstance(e, Exception):  # (another error', EK_T),
    ('EK31', CP, '            if ev.kept_lost:\n                lost.append(f"of {name}, {ev.kept_lost}")\n', '', EK_T),
    ('EK32', CP, '            if lost:\n                e.measures_lost = "; ".join(lost)\n', '', EK_T),
    ('EK33', CP, 'say(e.measures_lost if lost else kept_note(kept))',
     'say(kept_note(kept))', EK_T),
    ('EK34', CP, '            if isinstance(e, Exception):  # (a stop\'s line is the command\'s)',
     '            if True:  # (a stop\'s line is the command\'s)', EK_T),
    ('EK35', CP, '                kept.rmdir()\n', '                pass\n', EK_T),
    ('EK36', CP, '        for key in keys:\n            drop_kept(kept / key, dist)',
     '        for key in keys[:-1]:\n            drop_kept(kept / key, dist)', EK_T),
    ('EK37', CP, '                    if f.is_dir() and not f.is_symlink():\n                        drop_kept(f)\n',
     '                    pass\n', EK_T),
    # session 55 (MQ): compare.kept_key and its use
    ('MQ01', CP, '    return digest({"weights": weights, "config": cfg.to_dict()})',
     '    return digest({"weights": weights})', MQ_CONFIG + MQ_ORDER + MQ_LOADED),
    ('MQ02', CP, '    return digest({"weights": weights, "config": cfg.to_dict()})',
     '    return digest({"config": cfg.to_dict()})', MQ_ORDER + MQ_FEWER),
    ('MQ03', CP, 'hashed.append(weights_digest(model, model is not m))', 'hashed.append(weights_digest(model, True))',
     MQ_LOADED),
    ('MQ04', CP, 'hashed.append(weights_digest(model, model is not m))',
     'hashed.append(weights_digest(model, model is m))', MQ_LOADED),
    ('MQ05', CP, 'seed, keep=kept / key,', 'seed, keep=kept / str(i),', MQ_ORDER),
    ('MQ06', CP, '                    if f.is_dir() and not f.is_symlink():\n',
     '                    if f.name.isdigit():\n', MQ_FEWER),
    # runtime: Dist.agree_each, weights_digest
    ('MQ07', RT, '        t[0], t[1 + self.rank] = state, mine\n', '        t[0], t[self.rank] = state, mine\n',
     MQ_RANKS),
    ('MQ08', RT, '        return int(t[0]), t[1:].tolist()\n', '        return int(t[0]), t[:-1].tolist()\n', MQ_RANKS),
    ('MQ09', RT, '            return state, [mine if r == self.rank else 0 for r in range(self.world)]\n',
     '            return state, [0] * self.world\n', MQ_WORDS),
    ('MQ10', RT, '    return model.source["digest"] if opened else digest(',
     '    return model.source["digest"] if not opened else digest(', MQ_LOADED),
    # evaluate: each rank's saves told to rank 0, holds_kept
    ('MQ11', EV, '                                                         saver.failed_code() if saver is not None '
     'else 0)', '                                                         0)', MQ_RANKS),
    ('MQ12', EV, '                        saver.elsewhere = saves\n', '                        pass\n', MQ_RANKS),
    ('MQ13', EV, '"lost": saver.lost() if saver is not None and saver.failed else "",', '"lost": "",', MQ_RANKS),
    ('MQ14', EV, '                self.kept_lost = _lost_by_rank([s["lost"] for s in shares])\n',
     '                pass\n', MQ_RANKS),
    ('MQ15', EV, '_lost_by_rank([s["lost"] for s in shares])', '_lost_by_rank([s["lost"] for s in shares[1:]])',
     MQ_RANKS),
    ('MQ16', EV, 'return any(not f.name.startswith(".") and _Kept.owner(f.name) for f in found)',
     'return any(_Kept.owner(f.name) for f in found)', MQ_HOLDS),
    ('MQ17', EV, 'return any(not f.name.startswith(".") and _Kept.owner(f.name) for f in found)',
     'return True', MQ_HOLDS),
    ('MQ18', EV, '    except OSError:\n        return False\n\n\ndef kept_note(',
     '    except OSError:\n        return True\n\n\ndef kept_note(', MQ_HOLDS),
    ('MQ19', EV, '        if self.ev.dist.main and self.elsewhere:', '        if self.elsewhere:', MQ_RANKS),
    ('MQ20', EV, 'for code in self.elsewhere[1:]])', 'for code in self.elsewhere])', MQ_RANKS),
    ('MQ21', EV, '        return 0 if not self.failed else 1 if self.saved and self.saved[0] else 2\n',
     '        return 0 if not self.failed else 2 if self.saved and self.saved[0] else 1\n', MQ_RANKS),
    ('MQ22', EV, '    if [r for r, _ in said] == [0]:\n', '    if said and said[0][0] == 0:\n', MQ_WORDS + MQ_RANKS),
    ('MQ23', EV, '    if [r for r, _ in said] == [0]:\n', '    if len(said) == 1:\n', MQ_RANKS),
    ('MQ24', EV, 'f"rank {r}: {w}" for r, w in said', 'f"rank {r + 1}: {w}" for r, w in said', MQ_RANKS),
    ('MQ25', EV, '        if lost:\n            error.measures_lost = lost\n',
     '        if self.failed:\n            error.measures_lost = lost\n', MQ_RANKS),
    # sweep: the lost dict, _say_kept, the page's folder refused
    ('MQ26', SW, '            if lost is not None and ev.kept_lost:\n', '            if lost is not None:\n', MQ_SWEEP),
    ('MQ27', SW, '                lost[path] = ev.kept_lost\n', '                pass\n', MQ_SWEEP),
    ('MQ28', SW, '                    if path in lost:\n                        e.measures_lost = lost[path]\n',
     '                    pass\n', MQ_SWEEP),
    ('MQ29', SW, '            except BaseException as e:\n                _say_kept(e, say)\n',
     '            except BaseException as e:\n                pass\n', MQ_SWEEP),
    ('MQ30', SW, '    if isinstance(error, Exception) and (lost := getattr(error, "measures_lost", None)):',
     '    if (lost := getattr(error, "measures_lost", None)):', MQ_STOP),
    ('MQ31', SW, '    elif isinstance(error, Exception) and (kept := getattr(error, "measures_kept", None)):',
     '    elif (kept := getattr(error, "measures_kept", None)):', MQ_STOP),
    # (the line's "kept" is the run's own: run() ending says where measures of its recipe are, measures_kept)
    ('MQ32', EV, '        elif self.saved and self.saved[0]:\n            # Where measures of this recipe',
     '        elif self.folder.exists():\n            # Where measures of this recipe', MQ_NONE + MQ_SWEEP + MQ_OTHER),
    ('MQ33', SW, '        refuse_others_results(out, "evaluate --epoch all", ',
     '        (lambda *a, **kw: None)(out, "evaluate --epoch all", ', MQ_PAGE),
    ('MQ34', SW, ' own_title=TITLE, where="",', ' where="",', MQ_PAGE),
    ('MQ35', SW, ' own_title=TITLE, where="",', ' own_title=TITLE,', MQ_PAGE),
    # images: refuse_others_results' own_title, where, instead and _titled
    ('MQ36', IM, '+ (instead or f"give {command}', '+ (f"give {command}', MQ_TITLE + MQ_PAGE),
    ('MQ37', IM, ' and not (own_title and _titled(page, own_title)):', ' and not own_title:', MQ_PAGE),
    ('MQ38', IM, '    return f"{html.escape(ending)}</title>" in head\n', '    return ending in head\n',
     MQ_TITLE + MQ_PAGE),
    ('MQ39', IM, '    except OSError:\n        return False\n    return f"{html.escape(ending)}</title>" in head\n',
     '    except OSError:\n        return True\n    return f"{html.escape(ending)}</title>" in head\n',
     MQ_TITLE + MQ_PAGE),
    # report: TensorBoardLog opened at its first use; trainer: its begin
    ('MQ40', R, '        if self._writer is None:\n            self._writer = tensorboard_writer()',
     '        if True:\n            self._writer = tensorboard_writer()', MQ_TB),
    ('MQ41', R, '        if self._close is not None:\n            self._close()\n', '        self._close()\n',
     MQ_UNOPENED + MQ_TB),
    ('MQ42', R, '            self._close = weakref.finalize(self, _close_writer, self._writer)\n',
     '            self._close = lambda: None\n', MQ_TB),
    ('MQ43', R, 'tensorboard_writer()(str(self.log_dir), purge_step=self._purge_step)',
     'tensorboard_writer()(str(self.log_dir), purge_step=None)', MQ_TB),
    ('MQ44', R, '        self._hparams_written = False\n\n    def open(self):',
     '        self._hparams_written = False\n        self.open()\n\n    def open(self):', MQ_TB),
    ('MQ45', T, '            if self.tb:  # the start made the log;',
     '            if False:  # the start made the log;', MQ_TB),
    # (the refusal's other callers, and the sweep's line after its eval.json's write failed)
    ('MQ46', IM, '                          where: str = "--out ", instead:',
     '                          where: str = "", instead:',
     [TCP + "an_out_holding_another_commands_results_is_refused_and_left_as_it_was"]),
    ('MQ47', SW, '                    _say_kept(e, say)\n', '                    pass\n',
     MQ_SWEEP),
]

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], MUTANTS, EQUIVALENT, SKIP, "mutation-fixes"))
