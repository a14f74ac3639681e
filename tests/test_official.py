"""Importing the reference's saved networks: files with the reference's own names, in the order its
networks register them (tests/reference_nets.py, written from its source), land in our networks
tensor for tensor by role, and the imported networks compute what the reference's forward computes.

Cases: the configurations of the authors' five pretrained models (their test scripts set only
input_nc; the rest are base_options.py's defaults), the default training configuration (G, E, D,
D2), and the options that change the reference's numbering or order: where_add=input, bilinear
upsampling, batch and no norm, dropout, the other encoders and discriminators, nz=0, files from
PyTorch < 0.4. Widths are small; depths are the reference's (unet_256: 8 levels)."""
import dataclasses

import pytest
import torch
from reference_nets import Ref, coded_values, forward_D, forward_E, forward_G, layout, random_values
from tiny import TINY

from bicyclegan.engine import BicycleGAN, CheckpointError, ModelConfig, load_checkpoint, make_config, save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.networks import build_discriminator, build_encoder, build_generator
from bicyclegan.engine.official import load_official_into
from bicyclegan.engine.presets import pretrained_config

WIDTH = dict(ngf=2, nef=2, ndf=4)  # ndf 4: a third scale still has round(4 / 4) = 1 filter

# The reference's options of each pretrained model: scripts/test_<name>.sh sets input_nc (1 for the
# edge maps); the networks are otherwise base_options.py's defaults.
PRETRAINED = {"edges2shoes": 1, "edges2handbags": 1, "night2day": 3, "maps": 3, "facades": 3}


def ours_of(o: Ref) -> ModelConfig:
    """Our config for the reference's options (the same names)."""
    fields = ("input_nc", "output_nc", "nz", "ngf", "nef", "ndf", "netG", "netE", "netD", "netD2", "num_Ds",
              "where_add", "norm", "nl", "upsample", "use_dropout", "conditional_D")
    return ModelConfig(**{f: getattr(o, f) for f in fields}, crop_size=o.size, impl="ref")


def pretrained_case(name, legacy=False):
    """(reference options, our config as `download model` builds it) of an authors' model."""
    o = Ref(input_nc=PRETRAINED[name], legacy=legacy, **WIDTH)
    return o, dataclasses.replace(pretrained_config(name).model, impl="ref", **WIDTH)


def case(nets="GE", **fields):
    o = Ref(**{**WIDTH, **fields})
    return o, ours_of(o), nets


CASES = {
    **{f"pretrained-{n}": (*pretrained_case(n), "GE") for n in PRETRAINED},
    "pretrained-edges2shoes-pytorch0.3": (*pretrained_case("edges2shoes", legacy=True), "GE"),
    # what `train` builds by default (the reference preset = base_options.py's defaults)
    "default": (Ref(**WIDTH), dataclasses.replace(make_config("reference").model, impl="ref", **WIDTH),
                ("G", "E", "D", "D2")),
    "where_add=input": case(where_add="input"),
    "bilinear": case(upsample="bilinear", nl="elu"),
    "input+bilinear+dropout": case(where_add="input", upsample="bilinear", use_dropout=True),
    "batch": case(("G", "E", "D", "D2"), norm="batch", use_dropout=True),
    "batch-pytorch0.3": case(("G", "E", "D"), norm="batch", legacy=True, where_add="input"),
    "norm=none": case(norm="none", where_add="input"),
    "nz=0": case("G", nz=0),
    "unet_128+resnet_128": case(("G", "E", "D"), netG="unet_128", netE="resnet_128", netD="basic_128_multi"),
    "conv_256+3 scales": case(("E", "D", "D2"), netE="conv_256", num_Ds=3, norm="batch", conditional_D=True),
    "unet_128+conv_128": case(("G", "E"), netG="unet_128", netE="conv_128", norm="none"),
    "single-scale D": case(("D", "D2"), norm="batch", netD="basic_256", netD2="basic_128", num_Ds=1),
    "one scale of basic_256_multi": case(("D",), num_Ds=1),
}


def build(cfg: ModelConfig, net: str):
    if net == "G":
        return build_generator(cfg)
    if net == "E":
        return build_encoder(cfg)
    return build_discriminator(cfg, cfg.netD if net == "D" else cfg.netD2)


def our_key(role, cfg: ModelConfig):
    """Where our network keeps the tensor of a reference role, from our modules' structure
    (engine/networks.py); None where ours has no such tensor."""
    *where, p = role
    if cfg.norm == "instance" and p in ("running_mean", "running_var"):
        return None  # PyTorch < 0.4's InstanceNorm statistics; InstanceNorm has none now
    if where[0] in ("down", "up"):  # U-Net level `lvl`: model.submodule. ... .submodule (lvl times)
        side, lvl, part = where
        base = "model." + "submodule." * lvl
        if part == "norm":
            return f"{base}{side}_norm.0.{p}"  # norm_act("batch") = Sequential(BatchNorm2d, act)
        if side == "down":
            return f"{base}down.{p}"  # ZConcatConv2d: x's channels, then z's, as the reference's cat
        return f"{base}up.{p}" if cfg.upsample == "basic" else f"{base}up.2.{p}"  # [Upsample, Pad, Conv2d]
    if where[0] in ("fc", "fcVar"):
        return f"{where[0]}.{p}"
    if where[0] == "E":
        _, n, part = where
        if cfg.netE.startswith("conv"):  # [conv, act, (conv, norm_act) ...]
            return f"conv.{2 * n}.{p}" if part == "conv" else f"conv.{2 * n + 1}.0.{p}"
        if n == 0:
            return f"conv.0.{p}"
        return f"conv.{n}." + {"norm1": "conv.0.0", "conv1": "conv.1", "norm2": "conv.2.0", "conv2": "conv.3",
                               "shortcut": "shortcut.1"}[part] + f".{p}"
    _, i, n, part = where  # D, D2 scale i: [conv, act, (conv, norm_act) x n_layers, conv]
    return f"scales.{i}.{2 * n}.{p}" if part == "conv" else f"scales.{i}.{2 * n + 1}.0.{p}"


def save(values, entries, path, prefix="", legacy=False):
    """The file the reference writes: its names, its order (legacy: PyTorch < 0.4's format)."""
    torch.save({prefix + name: values[name] for name, _, _ in entries}, path,
               **({"_use_new_zipfile_serialization": False} if legacy else {}))


def write_reference_file(net, o: Ref, which: str, cfg: ModelConfig, path):
    """Our network `net` saved as the reference would save it: every tensor of the reference's
    layout taken from our tensor of the same role."""
    sd = net.state_dict()
    entries = layout(o, which)
    save({name: sd[our_key(role, cfg)] for name, _, role in entries}, entries, path, legacy=o.legacy)


@pytest.mark.parametrize("name", CASES)
def test_every_tensor_lands_in_ours_of_the_same_role(name, tmp_path):
    o, cfg, nets = CASES[name]
    for which in nets:
        entries = layout(o, which)
        values = coded_values(entries)
        net = build(cfg, which)
        # "module." (a state_dict of an nn.DataParallel wrapper, as code that saves net.state_dict() of
        # the reference's wrapped networks writes; its own save_networks saves net.module) on two of them
        save(values, entries, tmp_path / f"{which}.pth", prefix="module." * (which in ("E", "D2")), legacy=o.legacy)
        load_official_into(net, tmp_path / f"{which}.pth")
        ours = net.state_dict()
        covered = set()
        for i, (ref_name, _, role) in enumerate(entries):
            key = our_key(role, cfg)
            if key is None:
                continue
            got, want = ours[key], values[ref_name].to(ours[key].dtype)
            came_from = entries[int(got.flatten()[0])][0] if got.numel() else "?"
            assert torch.equal(got, want), f"{which}: our {key} holds the reference's {came_from}, not {ref_name}"
            covered.add(key)
        # Every tensor of ours has its reference counterpart (a file without BatchNorm step counts
        # leaves ours as BatchNorm's loading sets them).
        left = {k for k in ours if not (o.legacy and k.endswith("num_batches_tracked"))} - covered
        assert not left, f"{which}: no reference tensor for our {sorted(left)}"


@pytest.mark.parametrize("name", CASES)
def test_imported_networks_compute_the_references_forward(name, tmp_path):
    o, cfg, nets = CASES[name]
    g = torch.Generator().manual_seed(0)
    A = torch.rand(2, o.input_nc, o.size, o.size, generator=g, dtype=torch.float64) * 2 - 1
    B = torch.rand(2, o.output_nc, o.size, o.size, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(2, o.nz, generator=g, dtype=torch.float64)
    for which in nets:
        entries = layout(o, which)
        values = random_values(entries, seed=len(which))
        save(values, entries, tmp_path / f"{which}.pth", legacy=o.legacy)
        net = build(cfg, which).double().eval()
        load_official_into(net, tmp_path / f"{which}.pth")
        with torch.no_grad():
            if which == "G":
                got, want = [net(A, z if o.nz else None)], [forward_G(o, entries, values, A, z)]
            elif which == "E":
                got, want = list(net(B)), list(forward_E(o, entries, values, B))
            else:
                x = torch.cat([A, B], 1) if o.conditional_D else B
                got, want = net(x), forward_D(o, entries, values, x, which)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m: f"{which}: {m}")


def test_layouts_hold_the_references_parameter_counts():
    # The reference's networks at its default options have these many parameters (as
    # tests/test_model.py counts ours): a check of the layouts against numbers, not our modules.
    def count(o, net):
        return sum(torch.Size(s).numel() for _, s, r in layout(o, net) if r[-1] in ("weight", "bias"))
    o = Ref()
    assert count(o, "G") == 54_794_627 and count(Ref(where_add="input"), "G") == 54_417_795
    assert count(Ref(netG="unet_128"), "G") == 42_145_155
    assert [count(Ref(netE=e), "E") for e in ("resnet_256", "conv_256", "resnet_128", "conv_128")] == [
        2_590_032, 2_760_656, 1_344_080, 1_711_824]
    assert count(o, "D") == 3_458_978 and count(Ref(netD="basic_128_multi"), "D") == 830_626


def test_layout_spells_the_references_names():
    # Known names of the reference's default networks (G_Unet_add_all: down, submodule, up; its
    # Sequentials number the LeakyReLU/ReLU too; E_ResNet: fc, fcVar, then conv).
    g = [n for n, _, _ in layout(Ref(), "G")]
    assert g[:4] == ["model.down.0.weight", "model.down.0.bias",
                     "model.submodule.down.1.weight", "model.submodule.down.1.bias"]
    assert g[-2:] == ["model.up.1.weight", "model.up.1.bias"] and len(g) == 32
    assert "model." + "submodule." * 7 + "up.1.weight" in g  # the innermost of 8 levels
    g = [n for n, _, _ in layout(Ref(where_add="input", norm="batch", legacy=True), "G")]
    assert g[:6] == ["model.model.0.weight", "model.model.0.bias", "model.model.1.model.1.weight",
                     "model.model.1.model.1.bias", "model.model.1.model.2.weight", "model.model.1.model.2.bias"]
    assert g[6:8] == ["model.model.1.model.2.running_mean", "model.model.1.model.2.running_var"]
    assert g[8] == "model.model.1.model.3.model.1.weight"
    e = [n for n, _, _ in layout(Ref(), "E")]
    assert e[:6] == ["fc.0.weight", "fc.0.bias", "fcVar.0.weight", "fcVar.0.bias", "conv.0.weight", "conv.0.bias"]
    assert e[6:10] == ["conv.1.conv.2.weight", "conv.1.conv.2.bias", "conv.1.conv.5.0.weight", "conv.1.conv.5.0.bias"]
    assert e[10:12] == ["conv.1.shortcut.1.weight", "conv.1.shortcut.1.bias"]
    d = [n for n, _, _ in layout(Ref(), "D")]
    assert d[:4] == ["model_0.0.weight", "model_0.0.bias", "model_0.2.weight", "model_0.2.bias"]
    assert d[-2:] == ["model_1.11.weight", "model_1.11.bias"]
    legacy = [n for n, _, _ in layout(Ref(legacy=True), "G")]
    # 13 InstanceNorms of 2 statistics: the down norms of the 6 middle levels, the up norms of all but the top
    assert "model.submodule.down.2.running_mean" in legacy and len(legacy) == 32 + 2 * 13


def test_the_cli_imports_all_four_files_of_a_reference_run(tmp_path):
    # A run of the reference at its defaults: G, E, D, D2 files, E and D2 saved from DataParallel wrappers.
    o, cfg, _ = CASES["default"]
    ref, paths = {}, {}
    for which in ("G", "E", "D", "D2"):
        entries = layout(o, which)
        values = random_values(entries, seed=len(which) + 10)
        values = {k: v.float() if v.is_floating_point() else v for k, v in values.items()}  # as saved
        ref[which] = entries, {k: v.double() for k, v in values.items()}
        paths[which] = tmp_path / f"latest_net_{which}.pth"
        save(values, entries, paths[which], prefix="module." * (which in ("E", "D2")))
    out = tmp_path / "run.pt"
    assert main(["import-official", *[f"--{w}={p}" for w, p in paths.items()], "--out", str(out),
                 *[f"--{k}={v}" for k, v in WIDTH.items()], "--impl=ref"]) == 0
    model = load_checkpoint(out, training=True)
    g = torch.Generator().manual_seed(1)
    A, B, z = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1, torch.rand(1, 3, 256, 256, generator=g) * 2 - 1, \
        torch.randn(1, 8, generator=g)
    nets = {n: net.double().eval() for n, net in model.networks().items()}
    with torch.no_grad():
        torch.testing.assert_close(nets["G"](A.double(), z.double()), forward_G(o, *ref["G"], A.double(), z.double()))
        torch.testing.assert_close(nets["E"](B.double()), forward_E(o, *ref["E"], B.double()))
        for which in ("D", "D2"):
            torch.testing.assert_close(nets[which](B.double()), forward_D(o, *ref[which], B.double(), which))


def test_a_file_of_other_options_is_refused_naming_the_file_and_the_tensor(tmp_path):
    # The authors' edges2shoes G (input_nc 1) given as a maps model (input_nc 3).
    o, _ = pretrained_case("edges2shoes")
    entries = layout(o, "G")
    save(coded_values(entries), entries, tmp_path / "G.pth")
    _, maps = pretrained_case("maps")
    with pytest.raises(CheckpointError, match=r"G\.pth: model\.down\.0\.weight has shape \(2, 9, 4, 4\) but our "
                                              r"model\.down\.weight has \(2, 11, 4, 4\)"):
        load_official_into(build(maps, "G"), tmp_path / "G.pth")


@pytest.mark.parametrize("lose", ["model.submodule.submodule.down.1.bias", "model.up.1.bias", None, "two more"])
def test_a_file_with_a_tensor_missing_or_extra_names_where_it_parts_from_ours(tmp_path, lose):
    # The reference's default G with one tensor missing (inside, or the last), or one extra at the
    # end: the count alone left the user to find which.
    o, cfg, _ = CASES["default"]
    entries = layout(o, "G")
    values = coded_values(entries)
    if lose:
        entries = [e for e in entries if e[0] != lose]
    save(values, entries, tmp_path / "G.pth")
    if lose in (None, "two more"):  # the first beyond ours is named, not the last
        more = {"extra.weight": torch.zeros(3), **({"extra2.weight": torch.zeros(5)} if lose else {})}
        torch.save({**torch.load(tmp_path / "G.pth"), **more}, tmp_path / "G.pth")
    want = {"model.submodule.submodule.down.1.bias":  # the next tensor stands where ours has the lost one
            r"holds 31 tensors, .* has 32; the first that differ: the file's "
            r"model\.submodule\.submodule\.submodule\.down\.1\.weight \(16, 16, 4, 4\) where ours has "
            r"model\.submodule\.submodule\.down\.bias \(8,\)",
            "model.up.1.bias": r"holds 31 tensors, .* has 32; the first that differ: the file ends where ours "
                               r"has model\.up\.bias \(3,\)",
            None: r"holds 33 tensors, .* has 32; the first that differ: the file's extra\.weight \(3,\) "
                  r"beyond our last",
            "two more": r"holds 34 tensors, .* has 32; the first that differ: the file's extra\.weight \(3,\) "
                        r"beyond our last"}[lose]
    with pytest.raises(CheckpointError, match=want):
        load_official_into(build(cfg, "G"), tmp_path / "G.pth")


def test_a_file_that_is_no_state_dict_says_what_it_holds(tmp_path, capsys):
    # Our own checkpoint given as --G (a user who has one already) was "does not hold a state_dict of
    # tensors", as a damaged file would be; so was any other pickle, without a word on what it held.
    _, cfg, _ = CASES["nz=0"]
    ours = save_checkpoint(BicycleGAN(make_config("reference", **TINY)), tmp_path / "ours.pt")
    with pytest.raises(CheckpointError, match=r"ours\.pt is a bicyclegan checkpoint .* not one of the reference's "
                                              r"\{epoch\}_net_G/E/D/D2\.pth files: use it as it is"):
        load_official_into(build(cfg, "G"), ours)
    for obj, holds in (([torch.zeros(2)], "a list"), ({}, "an empty dict"),
                       ({"w": torch.zeros(2), "epoch": 3, "lr": 0.1}, "a dict of Tensor, float, int")):
        torch.save(obj, tmp_path / "x.pth")
        with pytest.raises(CheckpointError, match=f"x\\.pth does not hold a state_dict of tensors, as the "
                                                  f"reference's .* do: it holds {holds}$"):
            load_official_into(build(cfg, "G"), tmp_path / "x.pth")
    assert main(["import-official", "--G", str(ours), "--out", str(tmp_path / "new.pt")]) == 2
    assert "is a bicyclegan checkpoint" in capsys.readouterr().err


def test_the_sample_command_said_gives_a_dataroot_only_where_the_checkpoint_names_none(tmp_path, capsys):
    # import-official --dataroot DIR stores DIR, which sample reads without a --dataroot; the line still said to give
    # one ("--dataroot DATA"), as for an import without it
    tiny = [f"--{k}={v}" for k, v in TINY.items()]
    torch.save(BicycleGAN(make_config("reference", **TINY)).G.state_dict(), tmp_path / "G.pth")
    data = tmp_path / "data"
    data.mkdir()
    for name, options, said in (("a.pt", [], " --dataroot DATA"), ("b.pt", ["--dataroot", str(data)], "")):
        assert main(["import-official", "--G", str(tmp_path / "G.pth"), "--out", str(tmp_path / name), *tiny,
                     *options]) == 0
        assert capsys.readouterr().out.endswith(f"; sample with: bicyclegan sample {tmp_path / name}{said}\n")
    assert load_checkpoint(tmp_path / "b.pt").cfg.data.dataroot == str(data)


def test_an_out_that_is_a_file_but_no_checkpoint_is_refused_and_kept(tmp_path, capsys):
    # `--G g.pth --out g.pth` replaced the weights file it read with the checkpoint, `--out RUN/config.json` the run's
    # config (only a checkpoint that train wrote was refused)
    tiny = [f"--{k}={v}" for k, v in TINY.items()]
    g = tmp_path / "G.pth"
    torch.save(BicycleGAN(make_config("reference", **TINY)).G.state_dict(), g)
    config = tmp_path / "config.json"
    config.write_text('{"model": {}}\n')
    for out in (g, config):
        before = out.read_bytes()
        assert main(["import-official", "--G", str(g), "--out", str(out), *tiny]) == 2
        assert capsys.readouterr().err == (
            f"bicyclegan import-official: OutputError: --out {out} is a file but no bicyclegan checkpoint (a weights "
            f"file, results, a run's config.json), which the import would replace; give another file to write, e.g. "
            f"{tmp_path / 'imported.pt'}\n")
        assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G.pth", "config.json"]


def test_a_load_size_its_preprocess_does_not_use_is_refused_as_train_refuses_it(tmp_path, capsys):
    """import-official --preprocess none --load_size N stored a load_size that means nothing under none (train
    refuses such a --load_size given on its command line): refused in train's words, nothing written; a load_size
    the preprocess uses, and a preprocess that uses none given without one, are taken."""
    tiny = [f"--{k}={v}" for k, v in TINY.items()]
    torch.save(BicycleGAN(make_config("reference", **TINY)).G.state_dict(), tmp_path / "G.pth")
    out = tmp_path / "imported.pt"
    for preprocess in ("none", "crop"):
        assert main(["import-official", "--G", str(tmp_path / "G.pth"), "--out", str(out), *tiny,
                     "--preprocess", preprocess, "--load_size", "64"]) == 2
        assert capsys.readouterr().err == (
            f"bicyclegan import-official: ConfigError: load_size=64 changes nothing under preprocess={preprocess} "
            f"(as given): only resize_and_crop, scale_width, scale_width_and_crop resize to it; give one of them as "
            f"preprocess, or leave load_size out\n")
        assert not out.exists()
    for options, load_size in ((["--preprocess", "scale_width", "--load_size", "64"], 64),
                               (["--preprocess", "none"], 32),  # (the crop size, import-official's default)
                               (["--load_size", "40"], 40)):  # (resize_and_crop, DataConfig's default)
        assert main(["import-official", "--G", str(tmp_path / "G.pth"), "--out", str(out), *tiny, *options]) == 0
        assert load_checkpoint(out).cfg.data.load_size == load_size, options
