import numpy as np
import pytest

from envs.layers import Architecture, Conv, FullyConnected, Pool, Softmax
from envs.space import PRESETS, RULES, RuleViolation, SearchSpace, get_space, output_size

MNIST = PRESETS["mnist"]


def test_presets_follow_the_paper():
    assert MNIST.max_depth == 12
    assert PRESETS["cifar10"].max_depth == 18
    assert PRESETS["svhn"].max_depth == 12
    assert PRESETS["cifar100"].num_classes == 100
    assert MNIST.conv_filters == (64, 128, 256, 512)
    assert MNIST.conv_kernels == (1, 3, 5)
    assert MNIST.pools == ((5, 3), (3, 2), (2, 2))
    assert MNIST.fc_widths == (512, 256, 128)
    # 12 convs + 3 pools + 3 FC + GAP + terminate
    assert len(MNIST.actions) == 20
    assert MNIST.actions[MNIST.terminate_action] == Softmax(10)


def test_output_sizes_follow_pytorch_conventions():
    assert output_size(Conv(64, 3, 1), 28) == 28
    assert output_size(Conv(64, 3, 2), 7) == 4
    assert output_size(Pool(2, 2), 7) == 3
    assert output_size(Pool(5, 3), 28) == 8
    assert output_size(Pool(3, 2), 28) == 13
    assert output_size(FullyConnected(10), 3) == 1


def test_size_bins():
    assert [MNIST.size_bin(r) for r in (28, 9, 8, 5, 4, 1)] == [0, 0, 1, 1, 2, 2]
    assert MNIST.num_size_bins == 3


@pytest.mark.parametrize(
    ("text", "rule", "index"),
    [
        ("[P(2,2), SM(10)]", "no-pool-first", 0),
        ("[C(64,3,1), P(2,2), P(2,2), SM(10)]", "no-pool-after-pool", 2),
        ("[C(64,3,1), FC(512), SM(10)]", "fc-needs-small-size", 1),
        ("[C(64,3,1), P(5,3), P(3,2), SM(10)]", "no-pool-after-pool", 2),
        (
            "[C(64,3,1), P(5,3), C(64,3,1), P(5,3), FC(128), C(64,1,1), SM(10)]",
            "after-fc-only-fc-or-terminate",
            5,
        ),
        (
            "[C(64,3,1), P(5,3), C(64,3,1), P(5,3), FC(128), FC(512), SM(10)]",
            "fc-not-wider",
            5,
        ),
        (
            "[C(64,3,1), P(5,3), C(64,1,1), P(2,2), FC(512), FC(256), FC(128), SM(10)]",
            "max-consecutive-fc",
            6,
        ),
        ("[C(64,3,1), GAP, FC(512), SM(10)]", "after-gap-only-terminate", 2),
        (
            "[C(64,3,1), P(5,3), C(64,1,1), P(5,3), C(64,3,1), SM(10)]",
            "kernel-smaller-than-size",
            4,
        ),
        ("[C(64,3,1), P(5,3), C(64,1,1), P(5,3), C(64,1,1), P(5,3), SM(10)]", "pool-fits-size", 5),
        ("[C(32,3,1), SM(10)]", "in-space", 0),
        ("[C(64,3,1), SM(100)]", "in-space", 1),
        ("[" + ", ".join(["C(64,3,1)"] * 13) + ", SM(10)]", "depth-limit", 12),
    ],
)
def test_rule_breaking_architectures_name_the_rule(text, rule, index):
    with pytest.raises(RuleViolation) as info:
        MNIST.validate(text)
    assert info.value.rule == rule
    assert info.value.index == index
    assert repr(rule) in str(info.value)
    assert not MNIST.is_valid(Architecture.parse(text))


def test_valid_architectures_pass():
    for text in [
        "[SM(10)]",
        "[GAP, SM(10)]",
        "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), C(64,3,1), P(2,2), FC(512), FC(256), SM(10)]",
        "[" + ", ".join(["C(64,3,1)"] * 12) + ", SM(10)]",
        "[C(512,5,1), P(5,3), C(64,3,1), GAP, SM(10)]",
    ]:
        assert str(MNIST.validate(text)) == text


def test_every_rule_has_a_description():
    assert all(rule.description for rule in RULES.values())


def test_terminate_is_always_allowed_and_only_at_depth_limit():
    state = MNIST.start()
    for _ in range(MNIST.max_depth):
        assert MNIST.action_mask(state)[MNIST.terminate_action]
        state = MNIST.next_state(state, Conv(64, 1, 1))
    mask = MNIST.action_mask(state)
    assert mask.sum() == 1 and mask[MNIST.terminate_action]


def test_sampling_is_seeded_and_valid():
    a = [MNIST.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [MNIST.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    for _ in range(300):
        assert MNIST.is_valid(MNIST.sample(rng))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"input_size": 0}, "input_size"),
        ({"conv_filters": ()}, "conv_filters"),
        ({"conv_kernels": (3, 3)}, "conv_kernels"),
        ({"pools": ((2,),)}, "pools"),
        ({"fc_widths": (-1,)}, "fc_widths"),
        ({"size_bins": (4, 8)}, "size_bins"),
        ({"max_fc": -1}, "max_fc"),
    ],
)
def test_bad_space_config_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        SearchSpace(**changes)


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="mnist"):
        get_space("imagenet")
    assert get_space("mnist", max_depth=4).max_depth == 4


def test_action_index_round_trips():
    for i, layer in enumerate(MNIST.actions):
        assert MNIST.action_index(layer) == i
    with pytest.raises(RuleViolation, match="not in search space"):
        MNIST.action_index(Conv(7, 3, 1))


def test_the_fc14_spaces_hold_the_hand_nets_that_mnist_rules_out():
    """PyTorch's MNIST example net (FC on a 14x14 map) and the README's (on 7x7) are, at
    widths / 2, architectures of mnist-fc14, not of MetaQNN's mnist space; FC on the 28x28
    input stays ruled out."""
    pytorch = "[C(64,3,1), C(128,3,1), P(2,2), FC(256), SM(10)]"
    readme = "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), SM(10)]"
    for preset in ("mnist-fc14", "fashion-mnist-fc14"):
        space = get_space(preset)
        assert space.is_valid(Architecture.parse(pytorch)) and space.is_valid(
            Architecture.parse(readme)
        )
        with pytest.raises(RuleViolation, match="fc-needs-small-size"):
            space.validate("[C(64,3,1), FC(256), SM(10)]")
    with pytest.raises(RuleViolation, match="fc-needs-small-size"):
        MNIST.validate(pytorch)
    assert get_space("mnist-fc14").replace(name="mnist", size_bins=(8, 4), fc_max_size=4) == MNIST
