"""Offset files shared by the Python clients: the last handled position and the store's epoch, written
atomically (a crash leaves the old offset or the new one, never half a file)."""
import json
import os


def load_offset(path):
    """Returns (position, epoch), or (0, None) when there is no offset file yet."""
    try:
        with open(path) as f:
            saved = json.load(f)
        return int(saved["position"]), saved.get("epoch")
    except FileNotFoundError:
        return 0, None


def save_offset(path, position, epoch):
    """Writes the offset durably: a temporary file, fsync, then an atomic rename."""
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump({"position": position, "epoch": epoch}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
