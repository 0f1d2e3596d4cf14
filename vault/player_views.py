"""The session player page of the vault UI (terminal and graphical playback).

The page only carries identifiers and what the Session Activity row already
shows; everything else (parts, signers, key shares, the user's protected key)
is fetched by the page's ES modules from the public API and decrypted in the
browser, so the server never sees a plaintext byte.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

# Which stream a player shows, best first: graphical when recorded, else the terminal.
PLAYABLE_STREAMS = ("guac", "terminal")


@login_required
def session_play(request: HttpRequest, record_id: int, session_id) -> HttpResponse:
    """Play one recorded session of a record (404 unless the user may view its recordings).

    ``?stream=terminal`` picks the terminal player when a session recorded both.
    """
    # Imported here: the vault app presents recordings but must not depend on
    # the recordings app at import time (dependency direction vault ← recordings).
    from recordings.selectors import sessions_visible_to

    session = (sessions_visible_to(request.user)
               .filter(pk=session_id, record_id=record_id).first())
    recording = getattr(session, "recording", None) if session is not None else None
    if recording is None:
        raise Http404("No such recorded session.")
    # A stream still recording may have no part yet: the player then waits for one.
    available = sorted((s.kind for s in recording.streams.all()
                        if s.kind in PLAYABLE_STREAMS and (s.next_seq > 0 or s.state == "open")),
                       key=PLAYABLE_STREAMS.index)
    if not available:
        raise Http404("This session has no playable stream.")
    wanted = request.GET.get("stream")
    stream = wanted if wanted in available else available[0]
    return render(request, "vault/play.html", {
        "session": session,
        "record": session.record,
        "recording": recording,
        "stream": stream,
        "streams": available,
        "live": session.status in ("open", "closing"),
    })
