import json

import pytest

from metaqnn.cli.main import build_parser, main
from tests.metaqnn.cli.test_cli import _one_line_error


def test_subcommands_have_help():
    parser = build_parser()
    for what in ("robustness", "transfer", "correlation", "accuracy"):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(["evaluate", what, "--help"])
        assert info.value.code == 0


def test_robustness_missing_checkpoint(capsys, tmp_path):
    _one_line_error(capsys, "evaluate", "robustness", str(tmp_path / "nope.pt"),
                    contains=("nope.pt", "no such checkpoint"))  # fmt: skip


@pytest.mark.parametrize(("option", "value", "named"), [
    ("--attacks", "fgsm,deepfool", "'deepfool'"),
    ("--corruptions", "fog,snow", "'snow'"),
    ("--destruction-attacks", "cw", "'cw'"),
    ("--epsilons", "8,-3", "'-3'"),
    ("--epsilons", "8,abc", "'abc'"),
    ("--epsilons", "300", "'300'"),
    ("--destruction-epsilon", "nan", "'nan'"),
    ("--noise", "-0.1", "'-0.1'"),
    ("--corruption-kind", "svhn", "'svhn'"),
])  # fmt: skip
def test_robustness_bad_option_names_the_value(capsys, digits_checkpoint, option, value, named):
    _one_line_error(capsys, "evaluate", "robustness", str(digits_checkpoint), option, value,
                    contains=(named,))  # fmt: skip


def test_robustness_writes_tables_figures_and_scalars(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "rob"
    code = main(["evaluate", "robustness", str(digits_checkpoint), "--max-images", "80",
                 "--attacks", "fgsm,bim", "--epsilons", "8,32", "--corruptions",
                 "gaussian_noise,jpeg", "--destruction-epsilon", "32", "--noise", "0,0.3",
                 "--blur", "0,1", "--out", str(out), "--no-progress"])  # fmt: skip
    text, _ = capsys.readouterr()
    assert code == 0
    assert "Clean accuracy" in text and "basic iterative" in text
    assert (out / "report.md").read_text().startswith("# Robustness of")
    payload = json.loads((out / "report.json").read_text())
    assert payload["n_images"] == 80 and payload["dataset"] == "digits"
    assert set(payload["attacks"]) == {"fgsm", "bim"}
    assert (out / "accuracy_curves.png").is_file() and (out / "adversarial_examples.png").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert payload["config"]["corruption_kind"] == "mnist"  # read from the 8x8 grey digits
    assert "Severity levels: MNIST-C's" in (out / "report.md").read_text()


def test_robustness_corruption_kind_option_chooses_the_levels(capsys, digits_checkpoint,
                                                              tmp_path):  # fmt: skip
    accuracies = {}
    for kind in ("mnist", "cifar"):
        out = tmp_path / kind
        code = main(["evaluate", "robustness", str(digits_checkpoint), "--max-images", "60",
                     "--attacks", "fgsm", "--epsilons", "8", "--corruptions", "contrast",
                     "--destruction-attacks", "fgsm", "--noise", "0", "--blur", "0",
                     "--corruption-kind", kind, "--out", str(out), "--no-progress"])  # fmt: skip
        assert code == 0
        payload = json.loads((out / "report.json").read_text())
        assert payload["config"]["corruption_kind"] == kind
        accuracies[kind] = payload["corruptions"]["contrast"]["accuracies"]
    assert accuracies["mnist"] != accuracies["cifar"]  # the two level tables differ


def test_correlation_command(capsys, tmp_path):
    rewards = tmp_path / "rewards.csv"
    rewards.write_text("architecture,gtn,real\n" + "".join(
        f"a{i},{(i * 7) % 10 / 10},{i / 10}\n" for i in range(10)))  # fmt: skip
    out = tmp_path / "corr"
    code = main(["evaluate", "correlation", str(rewards), "--cheap", "gtn", "--reference", "real",
                 "--top-k", "3", "--resamples", "50", "--out", str(out)])  # fmt: skip
    text, _ = capsys.readouterr()
    assert code == 0 and "Spearman rho" in text and "top-3 overlap" in text
    assert (out / "scatter.png").is_file() and (out / "report.json").is_file()


def test_correlation_errors(capsys, tmp_path):
    _one_line_error(capsys, "evaluate", "correlation", str(tmp_path / "x.csv"), "--cheap", "a",
                    "--reference", "b", contains=("x.csv", "no such file"))  # fmt: skip
    rewards = tmp_path / "r.csv"
    rewards.write_text("gtn,real\n1,2\n2,3\n3,4\n")
    _one_line_error(capsys, "evaluate", "correlation", str(rewards), "--cheap", "proxy",
                    "--reference", "real", contains=("'proxy'", "gtn"))  # fmt: skip
    _one_line_error(capsys, "evaluate", "correlation", str(rewards), "--cheap", "gtn",
                    "--reference", "real", "--top-k", "2.5", contains=("2.5",))  # fmt: skip


def test_transfer_command(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "transfer"
    code = main(["evaluate", "transfer", str(digits_checkpoint), "--to", "digits", "--steps", "5",
                 "--out", str(out), "--no-progress"])  # fmt: skip
    text, _ = capsys.readouterr()
    assert code == 0
    for mode in ("as_is", "scratch", "finetuned"):
        assert f"| {mode}" in text
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 3


def test_transfer_errors(capsys, digits_checkpoint):
    _one_line_error(capsys, "evaluate", "transfer", str(digits_checkpoint), "--to", "digits",
                    "--modes", "scratch,distill", contains=("'distill'",))  # fmt: skip
    _one_line_error(capsys, "evaluate", "transfer", str(digits_checkpoint), "--to", "imagenet",
                    "--steps", "1", contains=("imagenet",))  # fmt: skip


def test_a_refitted_checkpoint_refuses_its_validation_split(capsys, digits_checkpoint, tmp_path):
    """A design picked by cross-validation was refitted on the validation images too."""
    import torch

    from metaqnn.cli import main

    state = torch.load(digits_checkpoint, weights_only=True)
    state["metrics"] = {"folds": 5, "val_accuracy": 0.99}
    refit = tmp_path / "refit.pt"
    torch.save(state, refit)
    assert main(["evaluate", "accuracy", str(refit), "--split", "val"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5-fold cross-validation" in err[0] and str(refit) in err[0]
    assert main(["evaluate", "accuracy", str(refit)]) == 0  # the test split is fine
