"""A bundle written byte by byte from docs/bundle-format.md, without the encoder.

Decoder test vector shared by the Python and Java tests (`make_golden.py` writes it as
`hand.skeleton`, `hand.dcw`, `hand.restored`). Every field carries a comment; the
CRC-32 and SHA-256 values were computed once with zlib/hashlib and are spelled out so
that the vector is static (the tests recompute them as a cross-check).

Restored file R (79 bytes):
    0   "TFL3HDR!"                                  skeleton bytes
    8   8 × float32 [0, 1, 1, 0, 0, 0, 1, 0]        segment 0 "dense"  (CLUSTERED_DENSE)
    40  "MID!"                                      skeleton bytes
    44  8 × float32 [0, 0, 2, 0, 0, 0, 0, -1]       segment 1 "sparse" (CLUSTERED_SPARSE)
    76  "END"                                       skeleton bytes
"""

import struct


def _h(text):
    """Hex with spaces and comments stripped: one field per line below."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()).replace(" ", ""))


RESTORED = (
    b"TFL3HDR!"
    + struct.pack("<8f", 0, 1, 1, 0, 0, 0, 1, 0)
    + b"MID!"
    + struct.pack("<8f", 0, 0, 2, 0, 0, 0, 0, -1)
    + b"END"
)
SKELETON = b"TFL3HDR!" + b"MID!" + b"END"

# Segment 0, CLUSTERED_DENSE. Indices [0,1,1,0,0,0,1,0]; code lengths sym0=1, sym1=2, so
# canonical codewords sym0="0", sym1="10", reserved="11". Bits in stream order:
# 0 10 10 0 0 0 10 0 -> b0..b10 = 0,1,0,1,0,0,0,0,1,0,0 -> LSB-first bytes 0x0A, 0x01.
PAYLOAD_DENSE = _h("""
    0100                # codebook_count = 1
    0200                # entry_count[0] = 2
    00000000            # entry 0 = +0.0 (float32 bit pattern, little-endian)
    0000803f            # entry 1 = 1.0
    0800000000000000    # indices.count = 8
    0b00000000000000    # indices.nbits = 11
    0200                # indices.alphabet = 2
    21                  # indices.lengths: sym0 = 1 (low nibble), sym1 = 2 (high nibble)
    0a01                # indices.data
""")

# Segment 1, CLUSTERED_SPARSE with background +0.0 and escape_run E = 3. Non-zeros at
# positions 2 and 7: runs of 2 and 4 zeros -> gap symbols [3] and [0 (escape: 3 zeros),
# 2 (1 zero, then an emitted element)].
# Gap code lengths sym0=2, sym2=2, sym3=2 -> sym0="00", sym2="01", sym3="10", reserved="11".
# Gap bits: 10 00 01 -> b0..b5 = 1,0,0,0,0,1 -> 0x21. Indices [0, 1] with sym0="0",
# sym1="10": bits 0,1,0 -> 0x02. Codebook ordered by use, ties by bit pattern: 2.0, -1.0.
PAYLOAD_SPARSE = _h("""
    0100                # codebook_count = 1
    0200                # entry_count[0] = 2
    00000040            # entry 0 = 2.0
    000080bf            # entry 1 = -1.0
    00000000            # background of codebook 0 = +0.0
    03                  # escape_run = 3
    0300000000000000    # gaps.count = 3
    0600000000000000    # gaps.nbits = 6
    0400                # gaps.alphabet = 4
    0222                # gaps.lengths: [2, 0, 2, 2]
    21                  # gaps.data
    0200000000000000    # indices.count = 2
    0300000000000000    # indices.nbits = 3
    0200                # indices.alphabet = 2
    21                  # indices.lengths: [1, 2]
    02                  # indices.data
""")

HEADER = _h("""
    4b444357            # 0   magic "KDCW"
    0100                # 4   version_major = 1
    0000                # 6   version_minor = 0
    78000000            # 8   header_size = 120
    02000000            # 12  segment_count = 2
    30000000            # 16  entry_size = 48
    0b000000            # 20  names_size = 11 ("dense" + "sparse")
    5b00000000000000    # 24  payload_size = 91 (33 + 58)
    4f00000000000000    # 32  restored_size = 79
    0f00000000000000    # 40  skeleton_size = 15
    38b1cf2399cb903a9478558c0a3ec0db1e1ea3aff9612d47fecefdeb45609ca4  # 48 restored_sha256
    325cb1d3c76a36d35cde37456aa2cecd55d7ba36683a49207abf5abe761d1293  # 80 skeleton_sha256
    666444a6            # 112 table_crc32 = 0xa6446466
    7f1fbfab            # 116 header_crc32 = 0xabbf1f7f (CRC-32 of bytes 0..115)
""")

TABLE = _h("""
    0800000000000000    # segment[0].offset = 8
    2000000000000000    # segment[0].size = 32
    2100000000000000    # segment[0].payload_size = 33
    0098bbab            # segment[0].payload_crc32 = 0xabbb9800
    01000000            # segment[0].channels = 1
    00000000            # segment[0].name_offset = 0
    05000000            # segment[0].name_size = 5
    01                  # segment[0].dtype = 1 (float32)
    03                  # segment[0].encoding = 3 (CLUSTERED_DENSE)
    000000000000        # segment[0].reserved
    2c00000000000000    # segment[1].offset = 44
    2000000000000000    # segment[1].size = 32
    3a00000000000000    # segment[1].payload_size = 58
    8dbd8210            # segment[1].payload_crc32 = 0x1082bd8d
    01000000            # segment[1].channels = 1
    05000000            # segment[1].name_offset = 5
    06000000            # segment[1].name_size = 6
    01                  # segment[1].dtype = 1 (float32)
    02                  # segment[1].encoding = 2 (CLUSTERED_SPARSE)
    000000000000        # segment[1].reserved
""")

NAMES = b"densesparse"

SIDECAR = HEADER + TABLE + NAMES + PAYLOAD_DENSE + PAYLOAD_SPARSE
