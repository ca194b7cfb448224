"""Damage bbolt files on purpose, the way disks and bugs do, for the bad-input
tests of `etcd snapshot status/verify`.

Knows just enough of the bbolt layout (docs/snapshot-format.md): the page
header (id u64, flags u16, count u16, overflow u32), the meta page (magic,
version, page size, flags, root bucket {root, sequence}, freelist, pgid,
txid, FNV-1a-64 checksum) and branch/leaf elements.  Each function returns
new bytes; the caller writes them to a file.
"""
import struct

MAGIC = 0xED0CDAED
BRANCH, LEAF, META, FREELIST = 0x01, 0x02, 0x04, 0x10
PAGE_HEADER = 16
META_FMT = "<IIII QQ Q Q Q Q"  # magic, version, pagesize, flags, root, seq, freelist, pgid, txid, checksum
META_SIZE = struct.calcsize(META_FMT)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def page_size(db):
    return struct.unpack_from("<I", db, PAGE_HEADER + 8)[0]


def metas(db):
    """[(page index, fields dict)] for both meta pages."""
    ps = page_size(db)
    out = []
    for i in (0, 1):
        f = struct.unpack_from(META_FMT, db, i * ps + PAGE_HEADER)
        names = ["magic", "version", "pagesize", "flags", "root", "seq", "freelist", "pgid", "txid",
                 "checksum"]
        out.append((i, dict(zip(names, f))))
    return out


def current_meta(db):
    return max(metas(db), key=lambda m: m[1]["txid"])


def set_meta(db, index, **changes):
    """Rewrite fields of meta page `index` and fix its checksum."""
    db = bytearray(db)
    ps = page_size(db)
    off = index * ps + PAGE_HEADER
    fields = dict(metas(db)[index][1])
    fields.update(changes)
    order = ["magic", "version", "pagesize", "flags", "root", "seq", "freelist", "pgid", "txid"]
    body = struct.pack(META_FMT[:-2], *[fields[k] for k in order])
    struct.pack_into(META_FMT, db, off, *[fields[k] for k in order], fnv1a64(body))
    return bytes(db)


def page(db, pgid):
    ps = page_size(db)
    pid, flags, count, overflow = struct.unpack_from("<QHHI", db, pgid * ps)
    return {"id": pid, "flags": flags, "count": count, "overflow": overflow, "offset": pgid * ps}


def branch_pages(db):
    """Page ids of every page whose header says branch, in file order."""
    ps = page_size(db)
    hwm = current_meta(db)[1]["pgid"]
    return [p for p in range(2, min(hwm, len(db) // ps)) if page(db, p)["flags"] == BRANCH
            and page(db, p)["id"] == p]


def leaf_elements(db, pgid):
    """[(flags, key, value)] of a reachable leaf page."""
    p = page(db, pgid)
    out = []
    for i in range(p["count"]):
        eoff = p["offset"] + PAGE_HEADER + 16 * i
        flags, pos, ksize, vsize = struct.unpack_from("<IIII", db, eoff)
        k = bytes(db[eoff + pos:eoff + pos + ksize])
        v = bytes(db[eoff + pos + ksize:eoff + pos + ksize + vsize])
        out.append((flags, k, v))
    return out


def reachable_branch(db, bucket=b"key"):
    """The root page of BUCKET (from the current meta's root leaf); it is a
    branch page once the bucket outgrows one page."""
    root = current_meta(db)[1]["root"]
    assert page(db, root)["flags"] == LEAF, "root bucket spans pages; use a smaller file"
    for flags, k, v in leaf_elements(db, root):
        if flags & 1 and k == bucket:
            pgid = struct.unpack_from("<Q", v, 0)[0]
            assert pgid and page(db, pgid)["flags"] == BRANCH, "bucket is not a branch"
            return pgid
    raise AssertionError(f"no bucket {bucket!r}")


def make_cycle(db):
    """Point the first child of a reachable branch page back at the page itself."""
    pgid = reachable_branch(db)
    db = bytearray(db)
    off = page(db, pgid)["offset"] + PAGE_HEADER
    struct.pack_into("<Q", db, off + 8, pgid)  # element: pos u32, ksize u32, pgid u64
    return bytes(db), pgid


def point_outside(db):
    """Make the current meta's root bucket live on a page past the end."""
    idx, m = current_meta(db)
    return set_meta(db, idx, root=m["pgid"] + 1000)


def huge_size(db):
    """Declare a high-water mark of 2^40 pages in the current meta."""
    idx, _ = current_meta(db)
    return set_meta(db, idx, pgid=1 << 40)


def wrong_magic(db):
    db = bytearray(db)
    ps = page_size(db)
    for i in (0, 1):
        struct.pack_into("<I", db, i * ps + PAGE_HEADER, 0xDEADBEEF)
    return bytes(db)


def flip_page_header(db):
    """Flip a bit in the flags of a reachable branch page (structure damage)."""
    pgid = reachable_branch(db)
    db = bytearray(db)
    db[page(db, pgid)["offset"] + 8] ^= 0x40
    return bytes(db), pgid


def reachable_pages(db, bucket=None):
    """Every page id reachable from the current meta's root bucket (or only
    from top-level BUCKET), with overflow pages."""
    seen = set()

    def walk(pgid):
        p = page(db, pgid)
        seen.update(range(pgid, pgid + 1 + p["overflow"]))
        if p["flags"] == BRANCH:
            for i in range(p["count"]):
                child = struct.unpack_from("<Q", db, p["offset"] + PAGE_HEADER + 16 * i + 8)[0]
                walk(child)
        elif p["flags"] == LEAF:
            for flags, _, v in leaf_elements(db, pgid):
                if flags & 1:
                    root = struct.unpack_from("<Q", v, 0)[0]
                    if root:  # 0: an inline bucket, stored inside this page
                        walk(root)

    root = current_meta(db)[1]["root"]
    if bucket is None:
        walk(root)
    else:
        for flags, k, v in leaf_elements(db, root):
            if flags & 1 and k == bucket and struct.unpack_from("<Q", v, 0)[0]:
                walk(struct.unpack_from("<Q", v, 0)[0])
    return seen
