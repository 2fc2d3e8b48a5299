"""The fixture course, built in code (what the modulestore stand-in holds).

    course-v1:StockX+LMS101+2026
      chapter ch1
        sequential seq1
          vertical unit1
            problem p1   (one response, weight 2: weighted possible 2)
            html h1      (a locked course asset, a /jump_to_id/ link, a link into the gated unit)
        sequential gated_seq   (a timed exam nobody started: descendants_are_gated is true)
          vertical gated_unit
            html gated_h1

Assets: ``locked.png`` (locked: enrolled learners only) and ``open.png`` (not
locked), both real 1x1 PNGs; their digest is their md5, as the contentstore
records it.
"""

import datetime
import hashlib
import struct
import zlib

from opaque_keys.edx.keys import CourseKey

from xmodule.capa_block import ProblemBlock
from xmodule.contentstore.content import StaticContent
from xmodule.course_block import COURSE_VISIBILITY_PRIVATE, ChapterBlock, CourseBlock
from xmodule.html_block import HtmlBlock
from xmodule.seq_block import SequenceBlock
from xmodule.vertical_block import VerticalBlock

COURSE_ID = "course-v1:StockX+LMS101+2026"
COURSE_KEY = CourseKey.from_string(COURSE_ID)


def usage_key(block_type, block_id):
    return COURSE_KEY.make_usage_key(block_type, block_id)


COURSE = usage_key("course", "course")
CHAPTER = usage_key("chapter", "ch1")
SEQ1 = usage_key("sequential", "seq1")
UNIT1 = usage_key("vertical", "unit1")
P1 = usage_key("problem", "p1")
H1 = usage_key("html", "h1")
GATED_SEQ = usage_key("sequential", "gated_seq")
GATED_UNIT = usage_key("vertical", "gated_unit")
GATED_H1 = usage_key("html", "gated_h1")

LOCKED_ASSET = COURSE_KEY.make_asset_key("asset", "locked.png")
OPEN_ASSET = COURSE_KEY.make_asset_key("asset", "open.png")

H1_DATA = (
    "<p>A locked course image:</p>"
    f'<img id="locked-asset" src="/{LOCKED_ASSET}" alt="locked asset">'
    '<p><a id="jump-link" href="/jump_to_id/h1">A link to this block by its id</a></p>'
    f'<p><a id="gated-link" href="/xblock/{GATED_UNIT}">The timed exam\'s unit</a></p>'
)


def build_courses():
    """The course tree (fresh blocks: the store indexes and links them)."""
    problem = ProblemBlock(P1, "Problem 1", weight=2.0, question="Type the word correct.")
    html = HtmlBlock(H1, "Text 1", data=H1_DATA)
    unit1 = VerticalBlock(UNIT1, "Unit 1", [problem, html])
    seq1 = SequenceBlock(SEQ1, "Subsection 1", [unit1])
    gated_unit = VerticalBlock(GATED_UNIT, "Exam unit", [HtmlBlock(GATED_H1, "Exam text", data="<p>Exam question.</p>")])
    gated_seq = SequenceBlock(GATED_SEQ, "Timed exam", [gated_unit], is_time_limited=True)
    chapter = ChapterBlock(CHAPTER, "Section 1", [seq1, gated_seq])
    course = CourseBlock(
        COURSE,
        "Stock LMS 101",
        [chapter],
        start=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        end=None,
        enrollment_start=None,
        enrollment_end=None,
        course_visibility=COURSE_VISIBILITY_PRIVATE,
        days_early_for_beta=None,
        max_student_enrollments_allowed=None,
        proctoring_provider=None,
        grade_cutoffs={"Pass": 0.5},
    )
    return [course]


def tiny_png(rgb):
    """A valid 1x1 PNG of one colour."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes(rgb))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


_ASSETS = None
UPLOADED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def course_assets():
    """{str(asset key): StaticContent}."""
    global _ASSETS  # pylint: disable=global-statement
    if _ASSETS is None:
        _ASSETS = {}
        for key, rgb, locked in ((LOCKED_ASSET, (200, 30, 30), True), (OPEN_ASSET, (30, 160, 60), False)):
            data = tiny_png(rgb)
            _ASSETS[str(key)] = StaticContent(
                key,
                key.block_id,
                "image/png",
                data,
                last_modified_at=UPLOADED,
                locked=locked,
                content_digest=hashlib.md5(data).hexdigest(),
            )
    return _ASSETS
