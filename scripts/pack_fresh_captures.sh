#!/usr/bin/env bash
# The five captures of configs/real_split.txt's "fresh" split (configs/fresh_captures.sh), packed from their
# public git repositories at pinned commits, as docs/RESULTS.md measured them (checked bit for bit against
# the step-0 PSNR of every start there):
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
echo "rebuilt: $(ls -d "$HERE"/*/ | xargs -n1 basename | tr '\n' ' ')"
