import pytest

from hrkd_trainer.layer_map import parse_layer_map, uniform_layer_map


def test_uniform_matches_tinybert():
    assert uniform_layer_map(4, 12).pairs == ((1, 3), (2, 6), (3, 9), (4, 12))
    assert uniform_layer_map(3, 6).pairs == ((1, 2), (2, 4), (3, 6))
    assert uniform_layer_map(4, 6).pairs == ((1, 1), (2, 3), (3, 4), (4, 6))


def test_explicit_forms():
    assert parse_layer_map("1:3, 2:6", 2, 6).pairs == ((1, 3), (2, 6))
    assert parse_layer_map("[[2, 6], [1, 2]]", 2, 6).pairs == ((1, 2), (2, 6))
    assert parse_layer_map([(1, 1)], 2, 6).pairs == ((1, 1),)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="teacher has only 6 layers"):
        parse_layer_map("1:12", 4, 6)
    with pytest.raises(ValueError, match="student has 2 layers"):
        parse_layer_map("3:6", 2, 6)
    with pytest.raises(ValueError, match="at least as deep"):
        parse_layer_map("uniform", 4, 2)
    with pytest.raises(ValueError, match="student:teacher"):
        parse_layer_map("1-3", 2, 6)
    with pytest.raises(ValueError, match="twice"):
        parse_layer_map("1:2,1:3", 2, 6)
