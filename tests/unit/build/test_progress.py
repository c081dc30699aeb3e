"""Which steps buildx's plain progress says came from the cache, read from transcripts of real
builds on the test bed (a second engine importing the registry cache another engine exported)."""

from __future__ import annotations

import io

from ci_toolkit.build.progress import Tally

FROM = "#5 [1/3] FROM 127.0.0.1:5001/library/busybox:latest@sha256:" + "c" * 64
STAMP = '#6 [2/3] RUN echo "e245" > /stamp && i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo $i > /count'

# Step 3 came from the imported cache (engine B's image manifest was byte-identical to A's, and
# /blob is 16 MB of /dev/urandom), but its vertex first showed up for the fetch of its layers
# after the export began: buildx never printed CACHED for it.
LOST_MARK = f"""\
#4 importing cache manifest from 127.0.0.1:5000/dbg-983c89c9/cache:k
#4 inferred cache manifest type: application/vnd.oci.image.manifest.v1+json done
#4 DONE 0.0s
{FROM}
#5 resolve 127.0.0.1:5001/library/busybox:latest@sha256:{"c" * 64} 0.0s done
#5 DONE 0.0s
{STAMP}
#6 CACHED
#7 exporting to image
#7 exporting manifest sha256:48a794557f08c640dd65d55a78ad211bf76f70207509746c43d17a32afab53fc done
#7 unpacking to moby-dangling@sha256:fe96779aa2675379cac6d9957fb0c560af5c34f35cd56ea598a2c6a6626614e7 0.1s done
#7 DONE 0.2s
#8 [3/3] RUN head -c 16777216 /dev/urandom > /blob
#8 sha256:8292f3ac54370a168128eb3e9b08563c1fb62f4e718204e2453b253e1560822a 153B / 153B 0.0s done
#8 sha256:84a5b1d217f087efc289aa9617b56c3cdcaa3b776d9544fe99b8d601ee0535d0 16.78MB / 16.78MB 0.1s done
#8 DONE 0.1s
"""

# Step 2 from the cache, step 3 changed and ran: the fetch of step 2's layer (which step 3
# needs) shows under step 2's vertex, never under the step that ran.
NEXT_RAN = f"""\
{FROM}
#5 DONE 0.0s
{STAMP}
#6 CACHED
{STAMP}
#6 sha256:af4e4bc856aadac6092fdbfa1c314ffd54cc3144c7dd9302c1bbe7ccedaf4850 154B / 154B done
#6 extracting sha256:af4e4bc856aadac6092fdbfa1c314ffd54cc3144c7dd9302c1bbe7ccedaf4850 done
#6 DONE 0.0s
#7 [3/3] RUN head -c 1000 /dev/urandom > /blob2 && ls /count
#7 0.225 /count
#7 DONE 0.3s
"""

# A base image pulled on an engine that lacks it: the rows are the FROM's pull, not a hit.
BASE_PULLED = f"""\
{FROM}
#5 sha256:9ad63333ebc97e32b987ae66aa3cff81300e4c2e6d2f2395cef8a3ae18b249fe 2.15MB / 2.15MB 0.1s done
#5 extracting sha256:9ad63333ebc97e32b987ae66aa3cff81300e4c2e6d2f2395cef8a3ae18b249fe 0.1s done
#5 DONE 0.3s
{STAMP}
#6 0.501 done
#6 DONE 1.1s
"""


def _tally(transcript: str) -> Tally:
    tally = Tally(stream=io.StringIO())
    for line in transcript.splitlines(keepends=True):
        tally.passthrough(line)
    return tally


def test_a_step_whose_cached_mark_was_lost_counts_from_its_fetched_layers() -> None:
    tally = _tally(LOST_MARK)
    assert set(tally.steps) == {"5", "6", "8"}
    assert tally.served() == {"6", "8"}
    assert tally.ran() == [FROM.split(" ", 1)[1]]


def test_the_step_that_ran_after_a_cached_one_is_not_counted() -> None:
    tally = _tally(NEXT_RAN)
    assert tally.served() == {"6"}
    assert tally.ran() == [FROM.split(" ", 1)[1], "[3/3] RUN head -c 1000 /dev/urandom > /blob2 && ls /count"]


def test_a_base_image_pull_is_not_a_cache_hit() -> None:
    tally = _tally(BASE_PULLED)
    assert tally.served() == set()
    assert len(tally.ran()) == 2
