from dataclasses import replace

import torch

from train.augment import course_augmentation
from train.loop import seed_everything


def test_augmentation_is_deterministic_under_a_seed_and_varies_per_image(data_dir):
    from train.data.sign_mnist import load_sign_mnist_file

    images = torch.from_numpy(load_sign_mnist_file(data_dir / "sign_mnist" / "sign_mnist_test.csv.gz").images[:16])
    batch = images[:, None]
    augment = course_augmentation(28, 28)
    seed_everything(5)
    a = augment(batch)
    seed_everything(5)
    b = augment(batch)
    seed_everything(6)
    c = augment(batch)
    assert a.shape == (16, 1, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 255.0
    # Each image gets its own draw: the same image twice in one batch comes out differently.
    twice = augment(torch.stack([batch[0], batch[0]]))
    assert not torch.equal(twice[0], twice[1])
    assert not torch.equal(a, batch.float())


def test_augmentation_can_crop_to_a_smaller_output():
    augment = course_augmentation(24, 24)
    out = augment(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert out.shape == (3, 3, 24, 24)


def test_camera_augmentation_is_seeded_and_fills_a_shrunk_subject_with_its_border():
    from train.augment import CAMERA

    # A bright frame-filling square on a grey border: zooming out must bring in grey, never black corners.
    batch = torch.full((8, 1, 28, 28), 120, dtype=torch.uint8)
    batch[:, :, 4:24, 4:24] = 220
    augment = course_augmentation(28, 28, CAMERA)
    seed_everything(3)
    a = augment(batch)
    seed_everything(3)
    assert torch.equal(a, augment(batch)) and a.shape == (8, 1, 28, 28)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 255.0
    # Rotation, shift and zoom only (kornia's RandomPerspective has no border mode: its corners are black).
    geometric = course_augmentation(
        28, 28, replace(CAMERA, brightness=0.0, contrast=0.0, gradient=0.0, noise_std=0.0, perspective=0.0)
    )
    seed_everything(3)
    out = geometric(batch)
    assert not torch.equal(out, batch.float()) and float(out.min()) > 60  # border padding, not zeros


def test_paper_augmentation_thickens_and_thins_strokes(data_dir):
    from train.augment import change_strokes
    from train.data.mnist import load_mnist

    digits = torch.from_numpy(load_mnist(data_dir, "test").images[:64]).float()[:, None] / 255
    torch.manual_seed(0)
    changed = change_strokes(digits, 1.0)
    ink = (digits > 0.5).sum(dim=(1, 2, 3))
    after = (changed > 0.5).sum(dim=(1, 2, 3))
    assert (after > ink).any() and (after < ink).any()  # some thicker, some thinner
    assert torch.equal(change_strokes(digits, 0.0), digits)


def test_clean_share_leaves_that_share_of_each_batch_unaugmented(data_dir):
    from train.data.mnist import load_mnist
    from train.mnist import MNIST_PAPER

    digits = torch.from_numpy(load_mnist(data_dir, "test").images[:64])[:, None]
    seed_everything(0)
    out = course_augmentation(28, 28, replace(MNIST_PAPER, clean_p=0.5))(digits)
    untouched = (out == digits.float()).all(dim=(1, 2, 3))
    assert 0 < int(untouched.sum()) < 64  # about half passed through as they are, the rest augmented
    assert torch.equal(course_augmentation(28, 28, replace(MNIST_PAPER, clean_p=1.0))(digits), digits.float())
