"""`compact`: a small pose-aware multi-view network that predicts one Gaussian per pixel block.

    images ──(shared 2D CNN, 1/2 and 1/4 resolution)──► features
    features + cameras ──(plane sweep at 1/4: D fronto-parallel planes, inverse-depth spacing,
        dot-product correlation averaged over the source views)──► cost volume [D, h/4, w/4]
    cost volume + features ──(2D conv net, planes as channels; plus the cost itself, scaled by a
        learnt gain)──► plane logits ──soft-argmin over inverse depth──► depth
    features, depth, block colour ──(Gaussian head: a few 2D convs)──► per block: depth refinement,
        opacity, log-scale residuals, rotation, colour residual (and optionally SH band 1)
    ──unproject at block centres with the known cameras──► Gaussians (splatfacto's parameterisation)

Where the context views come with the capture's SfM points, each block takes the depth those points
give it (`sfm_depth.py`) instead of the plane sweep's: on real photos the sweep's depth is close to
a plane at the focus distance, and Gaussians at the wrong depth lose to splatfacto's SfM start once
refinement runs (docs/RESULTS.md). The head still predicts everything else.

Everything the network sees is relative to the cameras: the plane sweep uses relative poses, and the
depth range is a multiple of each view's *focus distance*, the distance along its optical axis to
the point closest to all optical axes (regularised towards a point ahead of the cameras, in units of
their spread, where the axes are near parallel). So a rigid motion of all cameras moves the Gaussians
rigidly and scaling the scene scales their means and scales. With one view (or cameras that share a
centre) the cameras carry no scale; the focus distance then falls back on the distance to the world
origin, the middle of nerfstudio's normalised scene (still equivariant to rotations about the origin
and to scale, no longer to translations).

An untrained network already renders sensibly: depth about the focus distance (a prior over planes
in the depth logits' bias), opacity `initial_opacity`, scales a fixed fraction of the block's metric
footprint, colour the block's mean image colour, rotations the camera's axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foresplat_ns.backbones.base import Backbone, BackboneConfig, ContextViews, register_backbone
from foresplat_ns.backbones.sfm_depth import sfm_depth_map
from foresplat_ns.cameras import focus_distances, matrix_to_quaternion, opengl_to_opencv, quaternion_multiply, unproject_depth
from foresplat_ns.gaussians import Gaussians, num_sh_bases, rgb_to_sh

SOURCE = "compact backbone"


@register_backbone
@dataclass
class CompactBackboneConfig(BackboneConfig):
    name: ClassVar[str] = "compact"

    width: int = 32
    """Base channel count: the encoder has width channels at 1/2 and 2*width at 1/4 resolution."""
    num_depth_planes: int = 32
    """Planes of the plane sweep, evenly spaced in inverse depth between near and far."""
    stride: int = 2
    """One Gaussian per stride x stride pixel block; a partial block at the bottom/right edge (odd image
    sides, e.g. 239x134 after undistortion) gets one too, from the replicate-padded image."""
    sh_degree: int = 3
    """SH degree of the output (splatfacto's); bands above `predict_sh_degree` are zero."""
    predict_sh_degree: int = 0
    """SH bands the network predicts: 0 (colour only) or 1 (plus a view-dependent linear term)."""
    near_factor: float = 0.3
    """Nearest plane, as a multiple of the view's focus distance."""
    far_factor: float = 5.0
    """Farthest plane, as a multiple of the view's focus distance."""
    parallel_axes_focus: float = 20.0
    """Focus distance, in units of the camera centres' RMS spread, assumed where the optical axes are
    parallel (forward-facing captures): 20 puts a stereo pair's focus 10 baselines ahead."""
    depth_prior_width: float = 0.2
    """Initial prior over planes (the depth logits' bias): a Gaussian in normalised inverse depth
    centred on the focus distance, with this standard deviation; 0 gives a uniform prior."""
    depth_refine_range: float = 0.2
    """The head's depth refinement is a factor in [1/(1+r), 1+r]."""
    scale_init_factor: float = 0.5
    """Initial standard deviation as a fraction of the block's metric footprint (depth * stride / focal)."""
    scale_residual_range: float = 4.0
    """Bound on the predicted log-scale residuals (softly, by tanh)."""
    initial_opacity: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if self.width < 4:
            problems.append(f"width must be at least 4, got {self.width}")
        if self.num_depth_planes < 2:
            problems.append(f"num_depth_planes must be at least 2, got {self.num_depth_planes}")
        if self.stride < 1:
            problems.append(f"stride must be positive, got {self.stride}")
        if not 0 <= self.sh_degree <= 4:
            problems.append(f"sh_degree must be in 0..4, got {self.sh_degree}")
        if self.predict_sh_degree not in (0, 1) or self.predict_sh_degree > self.sh_degree:
            problems.append(f"predict_sh_degree must be 0 or 1 and at most sh_degree, got {self.predict_sh_degree}")
        if not 0 < self.near_factor < self.far_factor:
            problems.append(f"need 0 < near_factor < far_factor, got {self.near_factor} and {self.far_factor}")
        if self.parallel_axes_focus <= 0:
            problems.append(f"parallel_axes_focus must be positive, got {self.parallel_axes_focus}")
        if self.depth_prior_width < 0:
            problems.append(f"depth_prior_width must be non-negative, got {self.depth_prior_width}")
        if not self.depth_refine_range >= 0:
            problems.append(f"depth_refine_range must be non-negative, got {self.depth_refine_range}")
        if not self.scale_init_factor > 0 or not self.scale_residual_range > 0:
            problems.append("scale_init_factor and scale_residual_range must be positive")
        if not 0 < self.initial_opacity < 1:
            problems.append(f"initial_opacity must be in (0, 1), got {self.initial_opacity}")
        if problems:
            raise ValueError(f"{SOURCE} config: " + "; ".join(problems))

    def setup(self) -> "CompactBackbone":
        return CompactBackbone(self)


def _scaled_intrinsics(intrinsics: Tensor, factor: float) -> Tensor:
    """Intrinsics of a grid whose cells are `factor` x `factor` pixels (cell centres at (k+0.5)*factor)."""
    scaled = intrinsics.clone()
    scaled[..., :2, :] = scaled[..., :2, :] / factor
    return scaled


def _with_sfm_depth(depth: Tensor, points: Tensor, k_s: Tensor, c2w: Tensor) -> Tensor:
    """The block depths [B,V,hb,wb], replaced view by view by the depth the SfM points give (every batch
    element is the one scene the points belong to); a view that too few points reach keeps its own."""
    b, v, hb, wb = depth.shape
    views = []
    for i in range(b):
        for j in range(v):
            from_points = sfm_depth_map(points, k_s[i, j], c2w[i, j], hb, wb)
            views.append(depth[i, j] if from_points is None else from_points.to(depth))
    return torch.stack(views).reshape(depth.shape)


# -- network pieces ----------------------------------------------------------------------------------
def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, gain: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    with torch.no_grad():
        conv.weight.mul_(gain)
    nn.init.zeros_(conv.bias)
    return conv


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (per view, so no coupling across views or the batch): keeps activations O(1) in training."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _ResBlock(nn.Module):
    """Pre-activation residual block (norm, relu, conv) x 2; the residual branch starts small."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = _norm(channels)
        self.conv1 = _conv(channels, channels)
        self.norm2 = _norm(channels)
        self.conv2 = _conv(channels, channels, gain=0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


def _down(cin: int, cout: int) -> nn.Conv2d:
    """Halve the resolution with a 4x4 kernel, so output cell k is centred on input cells 2k and 2k+1
    (a 3x3 stride-2 kernel would centre it on 2k, shifting features against the plane sweep's grid)."""
    return _conv(cin, cout, kernel=4, stride=2)


class _Encoder(nn.Module):
    """Per-view features at 1/2 (width) and 1/4 (2*width) resolution; 1/8 context is added to 1/4."""

    def __init__(self, width: int):
        super().__init__()
        w2 = 2 * width
        self.stem = nn.Sequential(_down(3, width), _norm(width))
        self.res2 = _ResBlock(width)
        self.down4 = nn.Sequential(_down(width, w2), _norm(w2))
        self.res4 = _ResBlock(w2)
        self.down8 = nn.Sequential(_down(w2, w2), _norm(w2))
        self.res8 = _ResBlock(w2)
        self.lateral8 = _conv(w2, w2, kernel=1, gain=0.5)
        self.out4 = _ResBlock(w2)
        self.norm2, self.norm4 = _norm(width), _norm(w2)

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """Normalised features (GroupNorm last) at 1/2 and 1/4 resolution."""
        f2 = self.res2(F.relu(self.stem((images - 0.5) / 0.25)))
        f4 = self.res4(F.relu(self.down4(F.relu(f2))))
        f8 = self.res8(F.relu(self.down8(F.relu(f4))))
        f4 = self.out4(f4 + self.lateral8(F.interpolate(F.relu(f8), size=f4.shape[-2:], mode="bilinear", align_corners=False)))
        return self.norm2(f2), self.norm4(f4)


class _DepthNet(nn.Module):
    """Regularises the cost volume (planes as channels) with the reference features; plane logits out."""

    def __init__(self, width: int, num_planes: int, prior: Tensor):
        super().__init__()
        w2 = 2 * width
        self.inp = nn.Sequential(_conv(num_planes + 1 + w2, w2), _norm(w2))
        self.res1 = _ResBlock(w2)
        self.down = nn.Sequential(_down(w2, w2), _norm(w2))
        self.res2 = _ResBlock(w2)
        self.up = _conv(w2, w2, kernel=1, gain=0.5)
        self.res3 = _ResBlock(w2)
        self.norm = _norm(w2)
        self.logits = _conv(w2, num_planes, gain=0.01)
        self.cost_gain = nn.Parameter(torch.tensor(1.0))
        """The cost volume also goes straight into the logits: matching works before the net has learnt to read it."""
        with torch.no_grad():
            self.logits.bias.copy_(prior)

    def forward(self, cost: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Plane logits and (normalised) features, both at the input's resolution."""
        x = self.res1(F.relu(self.inp(torch.cat([cost, x], 1))))
        low = self.res2(F.relu(self.down(F.relu(x))))
        x = self.res3(x + self.up(F.interpolate(F.relu(low), size=x.shape[-2:], mode="bilinear", align_corners=False)))
        x = self.norm(x)
        return self.logits(F.relu(x)) + self.cost_gain * cost, x


class _GaussianHead(nn.Module):
    """A few convs on [features, depth cues, block colour] to the raw per-block Gaussian outputs."""

    def __init__(self, in_channels: int, width: int, out_channels: int):
        super().__init__()
        self.inp = nn.Sequential(_conv(in_channels, width), _norm(width))
        self.res = _ResBlock(width)
        self.norm = _norm(width)
        self.out = _conv(width, out_channels, kernel=1, gain=0.003)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.norm(self.res(F.relu(self.inp(x))))))


def _resize(x: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] % size[0] == 0 and x.shape[-1] % size[1] == 0:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# -- the backbone ------------------------------------------------------------------------------------
class CompactBackbone(Backbone):
    ENCODER_FACTOR = 8
    """Images are padded (bottom/right) to a multiple of this and of the stride, then cropped back."""
    CONTEXT_SIDE_PER_TRAINED_SIDE = 1.5
    """The shipped checkpoints were trained on images of at most 160 px. At 480 px, on the four training
    captures stored larger than 240 px, their predictions started 0.1-2.5 dB better (held-out PSNR) from
    context views shrunk to 240 px than from the views as they were, and were level with or ahead of
    160 px ones from 50 steps on (0.06 dB behind at 2,000; docs/RESULTS.md): 1.5x the side a checkpoint
    was trained at."""
    UNRECORDED_TRAINED_SIDE = 160
    """The side assumed for a checkpoint that does not record one (the shipped ones, all trained at 160 px)."""

    @property
    def preferred_context_side(self) -> int:
        """1.5x the longest image side its checkpoint trained on (`image_side` in the checkpoint's record)."""
        trained = self.training_record.get("image_side") or self.UNRECORDED_TRAINED_SIDE
        return round(self.CONTEXT_SIDE_PER_TRAINED_SIDE * trained)

    def __init__(self, config: CompactBackboneConfig):
        super().__init__()
        self.config = config
        width, planes = config.width, config.num_depth_planes
        self.encoder = _Encoder(width)
        self.match = _conv(2 * width, width, kernel=1, gain=0.5)
        self.depth_net = _DepthNet(width, planes, self._plane_prior())
        self.num_sh_outputs = 3 * (num_sh_bases(config.predict_sh_degree) - 1)
        out_channels = 1 + 1 + 3 + 4 + 3 + self.num_sh_outputs
        head_in = width + 2 * width + 3 + 3  # fine features, depth-net features, depth cues, block colour
        self.head = _GaussianHead(head_in, width, out_channels)
        with torch.no_grad():
            self.head.out.bias[1] = math.log(config.initial_opacity / (1 - config.initial_opacity))
            self.head.out.bias[5] = 1.0  # identity rotation (w), in the camera's frame

    def head_parameter_names(self) -> Tuple[str, ...]:
        return tuple(n for n, _ in self.named_parameters() if n.startswith("head."))

    # -- depth planes ------------------------------------------------------------------------------
    def _plane_positions(self) -> Tensor:
        """Normalised inverse-depth coordinate of each plane: 0 at near, 1 at far."""
        return torch.linspace(0.0, 1.0, self.config.num_depth_planes, dtype=torch.float64)

    def _focus_position(self) -> float:
        """Where the focus distance sits in the normalised inverse-depth coordinate."""
        inv_near, inv_far = 1.0 / self.config.near_factor, 1.0 / self.config.far_factor
        return (inv_near - 1.0) / (inv_near - inv_far)

    def _plane_prior(self) -> Tensor:
        sigma = self.config.depth_prior_width
        if sigma == 0:
            return torch.zeros(self.config.num_depth_planes)
        u = self._plane_positions()
        return (-0.5 * ((u - self._focus_position()) / sigma) ** 2).float()

    def depth_range(self, camtoworlds: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(focus, near, far) distances per view [B,V] of OpenGL cameras [B,V,4,4], in their units."""
        focus = focus_distances(camtoworlds, self.config.parallel_axes_focus)
        return focus, focus * self.config.near_factor, focus * self.config.far_factor

    # -- plane sweep -----------------------------------------------------------------------------
    def _cost_volume(
        self, feats: Tensor, intrinsics: Tensor, c2w_cv: Tensor, plane_depths: Tensor, image_hw: Tuple[int, int], factor: int
    ) -> Tuple[Tensor, Tensor]:
        """Mean over source views of the feature correlation on each reference view's planes.

        feats [B,V,C,h,w]; plane_depths [B,V,D]; returns cost [B,V,D,h,w] and the fraction of source
        views that see each reference cell [B,V,1,h,w] (zeros for a single view).
        """
        b, v, c, h, w = feats.shape
        d = plane_depths.shape[-1]
        net_dtype = feats.dtype
        if v == 1:
            return feats.new_zeros((b, v, d, h, w)), feats.new_zeros((b, v, 1, h, w))
        geo = c2w_cv.dtype
        k_f = _scaled_intrinsics(intrinsics, factor)  # [B,V,3,3]
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=geo, device=feats.device) + 0.5,
            torch.arange(w, dtype=geo, device=feats.device) + 0.5,
            indexing="ij",
        )
        pix = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)], 0)  # [3,hw]
        rays = torch.linalg.inv(k_f) @ pix  # [B,V,3,hw], z = 1
        rot, trans = c2w_cv[..., :3, :3], c2w_cv[..., :3, 3:]
        rot_inv = rot.transpose(-1, -2)
        max_x, max_y = image_hw[1] / factor, image_hw[0] / factor
        ref = feats.reshape(b * v, c, 1, h * w)
        cost = feats.new_zeros((b * v, d, h * w))
        count = feats.new_zeros((b * v, d, h * w))
        for shift in range(1, v):
            src = (torch.arange(v, device=feats.device) + shift) % v
            # reference camera -> source camera: X_s = R_s^T (R_r X_r + t_r - t_s)
            rel_rot = rot_inv[:, src] @ rot
            rel_trans = rot_inv[:, src] @ (trans - trans[:, src])
            direction = k_f[:, src] @ rel_rot @ rays  # [B,V,3,hw]
            origin = k_f[:, src] @ rel_trans  # [B,V,3,1]
            proj = direction[:, :, None] * plane_depths[..., None, None] + origin[:, :, None]  # [B,V,D,3,hw]
            z = proj[..., 2, :]
            valid = z > 1e-6 * plane_depths[..., None]
            xy = proj[..., :2, :] / torch.where(valid, z, torch.ones_like(z))[..., None, :]
            x, y = xy[..., 0, :], xy[..., 1, :]
            valid = valid & (x >= 0) & (x <= max_x) & (y >= 0) & (y <= max_y)
            grid = torch.stack([2 * x / w - 1, 2 * y / h - 1], -1)  # [B,V,D,hw,2]
            grid = torch.where(valid[..., None], grid, torch.full_like(grid, -2.0))
            sampled = F.grid_sample(
                feats[:, src].reshape(b * v, c, h, w),
                grid.reshape(b * v, d, h * w, 2).to(net_dtype),
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )  # [BV,C,D,hw]
            mask = valid.reshape(b * v, d, h * w).to(net_dtype)
            cost = cost + (sampled * ref).mean(1) * mask
            count = count + mask
        cost = cost / count.clamp_min(1.0)
        seen = (count / (v - 1)).mean(1, keepdim=True)
        return cost.reshape(b, v, d, h, w), seen.reshape(b, v, 1, h, w)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, context: ContextViews) -> Gaussians:
        context.validate(SOURCE)
        cfg = self.config
        s = cfg.stride
        b, v, height, width, _ = context.images.shape
        if (context.intrinsics[..., 0, 0] <= 0).any() or (context.intrinsics[..., 1, 1] <= 0).any():
            raise ValueError(f"{SOURCE}: intrinsics have non-positive focal lengths")
        geo = context.camtoworlds.dtype if context.camtoworlds.is_floating_point() else torch.float32
        net = next(self.parameters()).dtype
        intrinsics = context.intrinsics.to(geo)
        c2w = context.camtoworlds.to(geo)
        c2w_cv = opengl_to_opencv(c2w)

        # Pad to a multiple of the encoder's factor and the stride; pixel coordinates stay the same.
        multiple = self.ENCODER_FACTOR * s // math.gcd(self.ENCODER_FACTOR, s)
        pad_h, pad_w = -height % multiple, -width % multiple
        images = context.images.to(net).reshape(b * v, height, width, 3).permute(0, 3, 1, 2)
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        f2, f4 = self.encoder(images)
        h4, w4 = f4.shape[-2:]

        # Plane sweep at 1/4 resolution.
        _, near, far = self.depth_range(c2w)
        u_planes = self._plane_positions().to(geo)
        inv_near, inv_far = 1.0 / near, 1.0 / far  # [B,V]
        plane_depths = 1.0 / (inv_near[..., None] + (inv_far - inv_near)[..., None] * u_planes)  # [B,V,D]
        match = self.match(F.relu(f4)).reshape(b, v, -1, h4, w4)
        cost, seen = self._cost_volume(match, intrinsics, c2w_cv, plane_depths, (height, width), 4)
        depth_in = torch.cat([seen.reshape(b * v, 1, h4, w4), f4], 1)
        logits, depth_feats = self.depth_net(cost.reshape(b * v, -1, h4, w4), depth_in)
        probs = torch.softmax(logits, 1)
        u = (probs * u_planes.to(net)[:, None, None]).sum(1, keepdim=True)  # soft-argmin, [BV,1,h4,w4]
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(1, keepdim=True) / math.log(cfg.num_depth_planes)

        # Gaussian head on the stride grid.
        gh, gw = (height + pad_h) // s, (width + pad_w) // s
        colour = F.avg_pool2d(images, s) if s > 1 else images  # block mean colour [BV,3,gh,gw]
        u_grid = _resize(u, (gh, gw))
        inv_near_f, inv_far_f = 1.0 / cfg.near_factor, 1.0 / cfg.far_factor
        log_depth_over_focus = -torch.log(inv_near_f + (inv_far_f - inv_near_f) * u_grid)
        cues = torch.cat([u_grid, _resize(entropy, (gh, gw)), log_depth_over_focus], 1)
        head_in = torch.cat([_resize(f2, (gh, gw)), _resize(F.relu(depth_feats), (gh, gw)), cues, colour - 0.5], 1)
        out = self.head(head_in)
        hb, wb = -(-height // s), -(-width // s)  # partial edge blocks included
        out = out[..., :hb, :wb].to(geo).reshape(b, v, -1, hb, wb).permute(0, 1, 3, 4, 2)  # [B,V,hb,wb,C]
        colour = colour[..., :hb, :wb].to(geo).reshape(b, v, 3, hb, wb).permute(0, 1, 3, 4, 2)
        u_grid = u_grid[..., :hb, :wb].to(geo).reshape(b, v, hb, wb)

        inv_depth = inv_near[..., None, None] + (inv_far - inv_near)[..., None, None] * u_grid
        refine = math.log1p(cfg.depth_refine_range) * torch.tanh(out[..., 0])
        depth = torch.exp(refine) / inv_depth  # [B,V,hb,wb]
        k_s = _scaled_intrinsics(intrinsics, s)
        if context.points is not None and context.points[0].shape[0] > 0:
            depth = _with_sfm_depth(depth, context.points[0], k_s, c2w)
        means = unproject_depth(depth, k_s, c2w)  # block centres, [B,V,hb,wb,3]

        fx, fy = intrinsics[..., 0, 0], intrinsics[..., 1, 1]
        log_focal = torch.stack([fx.log(), fy.log(), 0.5 * (fx.log() + fy.log())], -1)[:, :, None, None]  # [B,V,1,1,3]
        base = torch.log(cfg.scale_init_factor * s * depth)[..., None] - log_focal
        r = cfg.scale_residual_range
        scales = base + r * torch.tanh(out[..., 2:5] / r)

        cam_quat = matrix_to_quaternion(c2w_cv[..., :3, :3])[:, :, None, None]  # [B,V,1,1,4]
        local = out[..., 5:9]
        local = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        quats = quaternion_multiply(cam_quat.expand_as(local), local)

        features_dc = rgb_to_sh(colour) + out[..., 9:12]
        rest = out.new_zeros((b, v, hb, wb, num_sh_bases(cfg.sh_degree) - 1, 3))
        if cfg.predict_sh_degree >= 1:
            # Band 1 is a vector per colour channel: colour += C1 * dir . (-c2, -c0, c1). Predicted in the
            # camera's (OpenCV) frame and rotated into the world's, so it turns with the cameras.
            coeffs = out[..., 12:21].reshape(b, v, hb, wb, 3, 3)  # [...,band index,rgb]
            vec = torch.stack([-coeffs[..., 2, :], -coeffs[..., 0, :], coeffs[..., 1, :]], -2)  # [...,xyz,rgb]
            vec = c2w_cv[:, :, None, None, :3, :3] @ vec
            band1 = torch.stack([-vec[..., 1, :], vec[..., 2, :], -vec[..., 0, :]], -2)
            rest = torch.cat([band1, rest[..., 3:, :]], -2)

        n = v * hb * wb
        gaussians = Gaussians(
            means=means.reshape(b, n, 3),
            scales=scales.reshape(b, n, 3),
            quats=quats.reshape(b, n, 4),
            opacities=out[..., 1:2].reshape(b, n, 1),
            features_dc=features_dc.reshape(b, n, 3),
            features_rest=rest.reshape(b, n, -1, 3),
        )
        gaussians.validate(SOURCE)
        return gaussians
