#!/usr/bin/env bash
# The captures of configs/real_split.txt's "fresh", "fresh2" and "fresh3" splits (configs/fresh_captures.sh), packed
# from their public git repositories at pinned commits, as docs/RESULTS.md measured them (the five "fresh"
# ones checked bit for bit against the step-0 PSNR of every start there):
#   scripts/pack_fresh_captures.sh DEST [MIRRORS]
# MIRRORS: a folder of <owner>+<name>/repo git directories (default /work/.mirror, the team's mirrors).
# Team-internal data (most sources state no licence): never commit DEST. Needs the project's venv (Pillow).
set -euo pipefail
HERE=$(mkdir -p "${1:?usage: scripts/pack_fresh_captures.sh DEST [MIRRORS]}" && cd "$1" && pwd)
MIRRORS=${2:-/work/.mirror}
PY=${PY:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# extract REPO_DIR COMMIT PATH_PREFIX DEST: every file under PATH_PREFIX at COMMIT into DEST (prefix stripped)
extract() {
    local repo=$1 commit=$2 prefix=$3 dest=$4
    git -C "$repo" ls-tree -r --name-only "$commit" -- "$prefix" | while IFS= read -r f; do
        local rel=${f#"$prefix"}; rel=${rel#/}
        mkdir -p "$dest/$(dirname "$rel")"
        git -C "$repo" show "$commit:$f" > "$dest/$rel"
    done
}

# downscale SRC DST N: PIL resize to (W//N, H//N) with LANCZOS, JPEG quality 95, same file names
downscale() {
    "$PY" - "$@" <<'PY'
import os, sys
from PIL import Image
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst, exist_ok=True)
for name in sorted(os.listdir(src)):
    im = Image.open(os.path.join(src, name))
    w, h = im.size
    im.convert("RGB").resize((w // n, h // n), Image.LANCZOS).save(os.path.join(dst, name), "JPEG", quality=95)
PY
}

# 1. kwrous_cup: COLMAP sparse/0 (cameras.bin, points3D.bin of kwrous/final_tensorf; images.bin = the original
#    model's images_0.bin from kwrous/final_3dgs, same capture), images_2 from the 800x600 images/
R=$MIRRORS/kwrous+final_tensorf/repo; C=85c25f19aecbf4b170a68e0fa93c19805b28de3b
R3=$MIRRORS/kwrous+final_3dgs/repo; C3=94c95be67d0f7dbf6b676448e0f2c3739e83890b
OUT=$HERE/kwrous_cup; rm -rf "$OUT"; mkdir -p "$OUT/sparse/0"
git -C "$R" show "$C:sparse/0/cameras.bin" > "$OUT/sparse/0/cameras.bin"
git -C "$R" show "$C:sparse/0/points3D.bin" > "$OUT/sparse/0/points3D.bin"
git -C "$R3" show "$C3:data/sparse/0/images_0.bin" > "$OUT/sparse/0/images.bin"
extract "$R" "$C" images "$TMP/kwrous_images"
downscale "$TMP/kwrous_images" "$OUT/images_2" 2

# 2. binbin_thermos: the undistorted model data/sparse/0 (PINHOLE 946x532), images_2 from data/images
R=$MIRRORS/binbin2002+3DGS-/repo; C=65a8a6899a1106c6d37f964c9dd9633620a06365
OUT=$HERE/binbin_thermos; rm -rf "$OUT"; mkdir -p "$OUT/sparse/0"
for f in cameras images points3D; do git -C "$R" show "$C:data/sparse/0/$f.bin" > "$OUT/sparse/0/$f.bin"; done
extract "$R" "$C" data/images "$TMP/binbin_images"
downscale "$TMP/binbin_images" "$OUT/images_2" 2

# 3. mamechun_room: the image_undistorter workspace dense/0: its sparse/ model, images_4 from dense/0/images
R=$MIRRORS/mamechun+gs_data/repo; C=57e50c56a1e601e468e012e0814187e5f698825b
OUT=$HERE/mamechun_room; rm -rf "$OUT"; mkdir -p "$OUT/sparse"
for f in cameras images points3D; do git -C "$R" show "$C:dense/0/sparse/$f.bin" > "$OUT/sparse/$f.bin"; done
extract "$R" "$C" dense/0/images "$TMP/mamechun_images"
downscale "$TMP/mamechun_images" "$OUT/images_4" 4

# 4. vork_blowtorch: LLFF; the 67 images stored (55 of 122 are over the snapshot's 4 MiB limit), images_8,
#    poses_bounds.npy cut to the rows of those images (rows follow the sorted names of all 122 images)
R=$MIRRORS/vork+blowtorch_photogrammetry/repo; C=8d2ec815831081449f18159a306c7a2d43a4f7ec
OUT=$HERE/vork_blowtorch; rm -rf "$OUT"; mkdir -p "$OUT" "$TMP/vork_images"
git -C "$R" ls-tree -r --name-only "$C" -- images | sed 's|^images/||' > "$TMP/vork_all_names.txt"
git -C "$R" ls-tree -r "$C" -- images | while IFS= read -r line; do
    blob=$(echo "$line" | awk '{print $3}'); path=${line#*$'\t'}
    if git -C "$R" cat-file -e "$blob" 2>/dev/null; then git -C "$R" show "$C:$path" > "$TMP/vork_images/${path#images/}"; fi
done
git -C "$R" show "$C:poses_bounds.npy" > "$TMP/vork_poses_bounds.npy"
"$PY" - "$TMP/vork_poses_bounds.npy" "$TMP/vork_all_names.txt" "$TMP/vork_images" "$OUT/poses_bounds.npy" <<'PY'
import os, sys
import numpy as np
rows = np.load(sys.argv[1])
names = sorted(line.strip() for line in open(sys.argv[2]) if line.strip())
assert len(names) == rows.shape[0], (len(names), rows.shape)
present = set(os.listdir(sys.argv[3]))
keep = [i for i, name in enumerate(names) if name in present]
assert len(keep) == len(present)
np.save(sys.argv[4], rows[keep])
PY
downscale "$TMP/vork_images" "$OUT/images_8" 8

# 5. ingp_fox: instant-ngp data/nerf/fox: transforms.json without the 17 frames whose image is not in the
#    repository (indent 2), images_4
R=$MIRRORS/NVlabs+instant-ngp/repo; C=abe236ee00cf90cfca6e36e65c00435d5b21f50a
OUT=$HERE/ingp_fox; rm -rf "$OUT"; mkdir -p "$OUT"
extract "$R" "$C" data/nerf/fox "$TMP/fox"
"$PY" - "$TMP/fox" "$OUT/transforms.json" <<'PY'
import json, os, sys
root = sys.argv[1]
meta = json.load(open(os.path.join(root, "transforms.json")))
meta["frames"] = [f for f in meta["frames"] if os.path.isfile(os.path.join(root, f["file_path"]))]
json.dump(meta, open(sys.argv[2], "w"), indent=2)
PY
downscale "$TMP/fox/images" "$OUT/images_4" 4
# images_from_frames FRAMES_BIN IMAGES_BIN: COLMAP >= 3.12 writes each image's pose into frames.bin (rig from
# world) beside images.bin; where images.bin is absent (over the snapshot's size limit) and the model has one
# rig of one camera (camera 1), every frame's pose is its image's, and the image of id k is frame_{k:04d}.jpg
# (checked: each image's own SfM points' colours match it better than its neighbours'). Writes the classic
# images.bin, with no 2D points (nothing here reads them).
images_from_frames() {
    "$PY" - "$@" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
count, offset, images = struct.unpack_from("<Q", data, 0)[0], 8, []
for _ in range(count):
    _frame, _rig = struct.unpack_from("<II", data, offset)
    pose = struct.unpack_from("<7d", data, offset + 8)
    (n_data,) = struct.unpack_from("<I", data, offset + 64)
    offset += 68
    for _ in range(n_data):
        sensor_type, camera, image = struct.unpack_from("<iIQ", data, offset)
        offset += 16
        assert sensor_type == 0 and camera == 1, (sensor_type, camera)
        images.append((image, pose))
assert offset == len(data)
with open(sys.argv[2], "wb") as out:
    out.write(struct.pack("<Q", len(images)))
    for image, pose in sorted(images):
        out.write(struct.pack("<i7di", image, *pose, 1) + f"frame_{image:04d}.jpg".encode() + b"\0" + struct.pack("<Q", 0))
PY
}

# "fresh2", added on 2026-12-07 (their repositories state no licence).
# 6. pradyumnak_desk: a desk in a room, 70 video frames (1920x1080, SIMPLE_RADIAL), COLMAP 3.12 sparse/0
#    (images.bin rebuilt from frames.bin), images_4
R=$MIRRORS/Pradyumnak777+cv2-project-2/repo; C=a16030a4e454ae1c1f632cdf0798d28225f77a1f
OUT=$HERE/pradyumnak_desk; rm -rf "$OUT"; mkdir -p "$OUT/sparse/0"
for f in cameras points3D; do git -C "$R" show "$C:sparse/0/$f.bin" > "$OUT/sparse/0/$f.bin"; done
git -C "$R" show "$C:sparse/0/frames.bin" > "$TMP/prad_frames.bin"
images_from_frames "$TMP/prad_frames.bin" "$OUT/sparse/0/images.bin"
extract "$R" "$C" images "$TMP/prad_images"
downscale "$TMP/prad_images" "$OUT/images_4" 4

# 7. pavan_corridor: a walk down a corridor, 195 phone video frames, the undistorted model dense/sparse
#    (PINHOLE 1059x1883; images.bin rebuilt from frames.bin) as sparse/0, images_4 from dense/images
R=$MIRRORS/PavanGavit+test/repo; C=cb0ad380d966f11a4b59c01812ed9fbdb17fa54c
OUT=$HERE/pavan_corridor; rm -rf "$OUT"; mkdir -p "$OUT/sparse/0"
for f in cameras points3D; do git -C "$R" show "$C:dense/sparse/$f.bin" > "$OUT/sparse/0/$f.bin"; done
git -C "$R" show "$C:dense/sparse/frames.bin" > "$TMP/pavan_frames.bin"
images_from_frames "$TMP/pavan_frames.bin" "$OUT/sparse/0/images.bin"
extract "$R" "$C" dense/images "$TMP/pavan_images"
downscale "$TMP/pavan_images" "$OUT/images_4" 4

# 8. tensorf_figurine: a figurine shot all round, 80 phone photos (1080x1920), instant-ngp's colmap2nerf
#    transforms.json (no SfM points), images_4
R=$MIRRORS/5697526+NeRF-TensoRF/repo; C=a0b42d4b70c0a595748106c58cd2d8d0915b2bed
OUT=$HERE/tensorf_figurine; rm -rf "$OUT"; mkdir -p "$OUT"
git -C "$R" show "$C:TensoRF/data/transforms.json" > "$OUT/transforms.json"
extract "$R" "$C" TensoRF/data/images "$TMP/tensorf_images"
downscale "$TMP/tensorf_images" "$OUT/images_4" 4

# "fresh3", added on 2026-12-08 (snowmiku's repository is MIT-licensed; xu-zhy's LICENSE.md is the
# gaussian-splatting software licence, naming no data; milk and fruit state no licence).
# images_from_3dgs_cameras CAMERAS_JSON IMAGES_BIN EXT: where images.bin is absent (over the snapshot's size limit),
# the poses gaussian-splatting wrote to output/cameras.json (camera-to-world "rotation" and "position" of
# every image, sorted by name) give the classic images.bin, with no 2D points: world-to-camera R = rotation^T,
# t = -R position (as its camera_to_JSON inverts them), camera 1, image id = rank of the name + 1 (COLMAP's
# ids here: each image's own SfM points project into it, checked), name = img_name + EXT.
images_from_3dgs_cameras() {
    "$PY" - "$@" <<'PY'
import json, struct, sys
import numpy as np
cameras = sorted(json.load(open(sys.argv[1])), key=lambda c: c["img_name"])
ext = sys.argv[3]
def qvec(r):  # rotation matrix -> unit quaternion (w, x, y, z), w >= 0
    w = np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = np.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2])) / 2
    y = np.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2])) / 2
    z = np.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2])) / 2
    x, y, z = np.copysign(x, r[2, 1] - r[1, 2]), np.copysign(y, r[0, 2] - r[2, 0]), np.copysign(z, r[1, 0] - r[0, 1])
    q = np.array([w, x, y, z]); return q / np.linalg.norm(q)
with open(sys.argv[2], "wb") as out:
    out.write(struct.pack("<Q", len(cameras)))
    for image_id, cam in enumerate(cameras, start=1):
        rot, pos = np.array(cam["rotation"], dtype=np.float64), np.array(cam["position"], dtype=np.float64)
        r = rot.T; t = -r @ pos
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-6)
        out.write(struct.pack("<i7di", image_id, *qvec(r), *t, 1) + (cam["img_name"] + ext).encode() + b"\0" + struct.pack("<Q", 0))
PY
}

# 9. xu_desk: a desk on a dorm shelf (laptop, kettle, penguin plush), 29 phone frames (1920x1080);
#    gaussian-splatting's convert.py workspace: the distorted model data/distorted/sparse/0 (one OPENCV camera,
#    7,562 points) as sparse/0, images_2 from data/input (data/images holds the undistorted 1906x1070 copies,
#    whose PINHOLE model is not in the repository)
R=$MIRRORS/xu-zhy+VR-project/repo; C=6532dd01eadd11d4c0ac882e4a10b91bc370624b
OUT=$HERE/xu_desk; rm -rf "$OUT"; mkdir -p "$OUT/sparse/0"
for f in cameras images points3D; do git -C "$R" show "$C:data/distorted/sparse/0/$f.bin" > "$OUT/sparse/0/$f.bin"; done
extract "$R" "$C" data/input "$TMP/xu_images"
downscale "$TMP/xu_images" "$OUT/images_2" 2

# 10. snowmiku_plush: a plush doll on a bed, shot all round, 97 phone photos (4032x3024); gaussian-splatting's
#     convert.py workspace: the distorted model distorted/sparse/0 (SIMPLE_RADIAL, 25,784 points) as sparse/0,
#     its images.bin (over the snapshot's limit) rebuilt from output/cameras.json, images_4 from input/ (the
#     undistorted images/ are over the limit; COLMAP's undistorter keeps every pose)
R=$MIRRORS/noname0310+snowmiku2023plush-splat/repo; C=70fedae4fe163642ef71489e7e445f21ec0783e2
OUT=$HERE/snowmiku_plush; rm -rf "$OUT"; mkdir -p "$OUT/sparse/0"
for f in cameras points3D; do git -C "$R" show "$C:distorted/sparse/0/$f.bin" > "$OUT/sparse/0/$f.bin"; done
git -C "$R" show "$C:output/cameras.json" > "$TMP/snowmiku_cameras.json"
images_from_3dgs_cameras "$TMP/snowmiku_cameras.json" "$OUT/sparse/0/images.bin" .jpg
extract "$R" "$C" input "$TMP/snowmiku_images"
downscale "$TMP/snowmiku_images" "$OUT/images_4" 4

# 11. zhouyou_milk: a milk carton shot all round, background already whited out, 43 photos (1140x855); LLFF
#     poses_bounds.npy (rows follow the sorted names, as its image_names.pkl lists them), images_2
R=$MIRRORS/zhouyou9505+milk/repo; C=e08c85768da6c663ac18bb959be18bb94486b3a3
OUT=$HERE/zhouyou_milk; rm -rf "$OUT"; mkdir -p "$OUT"
git -C "$R" show "$C:poses_bounds.npy" > "$OUT/poses_bounds.npy"
extract "$R" "$C" images "$TMP/milk_images"
downscale "$TMP/milk_images" "$OUT/images_2" 2

# 12. tushar_fruit: an apple and a banana on a mattress, shot all round, 81 phone photos stored at 605x806;
#     instant-ngp's colmap2nerf transforms.json (OPENCV distortion, no SfM points), unchanged with its images
#     as stored (their long side is already in range): file_path is ./newfruit_small/NAME
R=$MIRRORS/tusharparimi+fruit-NeRF/repo; C=236cb0105d687745f7a13f454679346a64ac47d6
OUT=$HERE/tushar_fruit; rm -rf "$OUT"; mkdir -p "$OUT"
git -C "$R" show "$C:transforms.json" > "$OUT/transforms.json"
extract "$R" "$C" newfruit_small "$OUT/newfruit_small"
echo "rebuilt: $(ls -d "$HERE"/*/ | xargs -n1 basename | tr '\n' ' ')"
