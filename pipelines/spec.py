"""What a loader does to each image: sizes, preprocessing mode, augmentation, channels; the option lists.

The geometry helpers use only integer arithmetic and comparisons, so the same code computes sizes
from Python ints (CPU loader, validation) and from DALI data nodes (inside the DALI graph).
"""
from dataclasses import dataclass

# The choices of make_loader's options, stated once (the engine's config takes them from here).
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
CROPPING = ("resize_and_crop", "crop", "scale_width_and_crop")  # the modes that end in a crop
RESIZING = ("resize_and_crop", "scale_width", "scale_width_and_crop")  # the modes that resize to load_size
DIRECTIONS = ("AtoB", "BtoA")
LAYOUTS = ("aligned", "ab_folders", "single")
BACKENDS = ("auto", "dali", "torch")


def as_hw(value, name):
    """An int or an (H, W) pair as a (H, W) tuple of positive ints."""
    hw = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ValueError(f"{name} must be a positive int or an (H, W) pair of them, got {value!r}")
    return hw


def round_to_multiple_of_4(x):
    """round(x / 4) * 4 with Python's round-half-to-even, as the reference's preprocess='none'."""
    q = x // 4
    r = x - 4 * q
    up = (r > 2) | ((r == 2) & (q - 2 * (q // 2) == 1))  # above half, or half and q odd
    return (q + up) * 4


@dataclass(frozen=True)
class LoaderSpec:
    load: tuple          # (H, W) for resize_and_crop; scale_width* use its W
    crop: tuple          # (H, W)
    preprocess: str
    augment: bool        # random crop offset and flip; False: centre crop, no flip
    flip: bool
    direction: str
    input_nc: int        # channels of the batch's "A" (the network input), after the swap
    output_nc: int       # channels of the batch's "B"

    def __post_init__(self):
        if self.preprocess not in PREPROCESS:
            raise ValueError(f"preprocess must be one of {PREPROCESS}, got {self.preprocess!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        for name in ("input_nc", "output_nc"):
            if getattr(self, name) not in (1, 3):
                raise ValueError(f"{name} must be 1 (grayscale) or 3 (RGB), got {getattr(self, name)!r}")
        if self.preprocess == "resize_and_crop" and (self.load[0] < self.crop[0] or self.load[1] < self.crop[1]):
            raise ValueError(f"load_size {self.load} must be at least crop_size {self.crop}")

    @property
    def crops(self):
        return self.preprocess in CROPPING

    @property
    def random_flip(self):
        return self.augment and self.flip

    def resized_size(self, h, w):
        """(H, W) of an image (one half) of size (h, w) after the resize step."""
        if self.preprocess == "resize_and_crop":
            return self.load
        if self.preprocess == "crop":
            return h, w
        if self.preprocess == "none":
            return round_to_multiple_of_4(h), round_to_multiple_of_4(w)
        lw = self.load[1]  # scale_width*: the reference's int(lw * h / w), in integers
        return lw * h // w, lw

    def output_size(self, h, w):
        return self.crop if self.crops else self.resized_size(h, w)

    def size_problem(self, h, w):
        """Why an image (one half) of size (h, w) cannot be loaded, or None."""
        rh, rw = self.resized_size(h, w)
        if rh < 1 or rw < 1:
            return f"size {w}x{h} resizes to nothing under preprocess={self.preprocess!r}"
        if self.crops and (rh < self.crop[0] or rw < self.crop[1]):
            crop = f"crop_size {self.crop[1]}x{self.crop[0]}"
            if self.preprocess == "crop":  # the crop is taken from the image as it is ("after resize" said otherwise)
                return f"size {w}x{h} (W x H) is smaller than {crop} (preprocess='crop' crops without resizing)"
            return f"size {w}x{h} (W x H, {rw}x{rh} after resize) is smaller than {crop}"
        return None
