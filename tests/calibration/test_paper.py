"""``edge paper``'s pen: a fixed pen width whatever the digit's size (the fine-pen renderings of issue 27)."""

import numpy as np

from calibration.paper import pen_ink, skeleton


def test_skeleton_of_a_bar_is_one_pixel_wide():
    bar = np.zeros((30, 60), bool)
    bar[10:20, 5:55] = True
    lines = skeleton(bar)
    assert lines[:, 15:45].sum(axis=0).tolist() == [1] * 30  # one pixel per column along the bar


def test_pen_width_stays_the_same_when_the_digit_grows(mnist_test):
    digit = mnist_test.images[0]
    for side in (60, 150):
        ink = np.asarray(pen_ink(digit, side, pen_width=3)) > 127
        assert 2.0 <= ink.sum() / skeleton(ink).sum() <= 4.5  # area / length: about 3 px at either size
