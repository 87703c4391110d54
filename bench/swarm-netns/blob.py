"""The file everyone pulls: F random bytes, as the one layer of an image in
an OCI image layout (what the origin's `layout` upstream reads), and as a
plain file for the BitTorrent run.

Random bytes so that nothing on the path can compress them. The layout is
kept between runs (keyed by size) because writing and hashing 1 GiB costs
seconds that have nothing to do with the benchmark.
"""

import hashlib
import json
import os

REPOSITORY = "bench/blob"
NAMESPACE = "shoal.local"
CHUNK = 4 << 20


def _write_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return digest


def ensure_layout(root, size):
    """Returns (layout dir, digest "sha256:...", path of the blob file)."""
    layout = os.path.join(root, f"layout-{size}")
    marker = os.path.join(layout, "bench-digest")
    if os.path.exists(marker):
        with open(marker) as f:
            digest = f.read().strip()
        return layout, digest, os.path.join(layout, "blobs", "sha256", digest.split(":")[1])

    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    partial = os.path.join(blobs, "partial")
    hasher = hashlib.sha256()
    with open(partial, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            hasher.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    layer = hasher.hexdigest()
    os.replace(partial, os.path.join(blobs, layer))

    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]},
    }).encode()
    config_digest = _write_blob(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{config_digest}", "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer}", "size": size}],
    }).encode()
    manifest_digest = _write_blob(blobs, manifest)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{manifest_digest}", "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    with open(marker, "w") as f:
        f.write(f"sha256:{layer}\n")
    return layout, f"sha256:{layer}", os.path.join(blobs, layer)
