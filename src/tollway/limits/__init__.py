"""Credit limits, reservations and rate limits that hold across any number of replicas.

Design
======

**What is checked.**  A key may have a credit limit (USD, optionally reset daily, weekly
Monday-Sunday or monthly, UTC), an RPM and a TPM limit.  Keys with none of these never
reach this package: :func:`has_limits` is a few attribute reads, so unlimited keys pay no
Redis or database round trip.

**Admission = one atomic step.**  After routing has planned the targets, the gateway asks
the store, in one atomic operation, whether the key has (a) fewer than ``rpm`` requests in
the sliding last minute, (b) room for this request's worst-case tokens in the minute's
``tpm`` budget, and (c) ``limit - settled - reserved >= reservation``.  Only if all hold
does it record the request, the tokens and the reservation; otherwise nothing is
recorded and the caller gets 429 (with ``Retry-After``) or 402.  Because the check and
the record are one step, 200 concurrent requests cannot race past the cap.

**The reservation** is the request's worst case on the dearest planned target, and it is
a bound, not an estimate (:mod:`tollway.limits.capping`): the prompt bound (UTF-8 bytes
of the text plus template, tool and image overheads, at most the endpoint's context
length) at the dearest input price, plus ``n`` times the output cap at the dearest output
price, rounded up.  The output cap is the larger of ``max_tokens`` and
``max_completion_tokens`` (Anthropic ``max_tokens``; the Responses API passes
``max_output_tokens``), or, when the request names none, ``limits.default_max_output_tokens``
(at most the planned endpoints' own maximum) lowered to what the remaining credit covers;
the gateway sends that cap upstream (:func:`~tollway.limits.capping.cap_output`), so the
upstream cannot produce more than was reserved.  A request that asked for more than the
credit covers, or whose prompt alone does not fit, gets 402 naming what would fit.

**Settlement** happens when the generation ends: ``Gateway._submit`` (success, stream end,
client hang-up) settles the real cost; ``Gateway._record_failure`` releases (cost 0).  The
store removes the reservation and adds the cost to the period's *settled* counter in the
same atomic step, so the spend is visible to the next check immediately, although the
ledger row itself is written later by the batched writer.  Settling runs as a background
task so it never delays a response; until it runs, the (larger) reservation still counts,
so spend is never under-counted in between.  Settling is idempotent: only the settlement
that removes the reservation adds the cost (an expired reservation leaves a mark for a day
that a late settlement removes instead), so a retry whose first answer was lost counts once.

**Settlements are never lost.**  One the store cannot take after two quick retries is
written to a local journal (:mod:`tollway.limits.journal`, one fsynced JSON line) and
retried in the background without end (backoff up to 1 s) until it lands; a process that
stops first leaves its file to the next process started on the same journal directory,
which applies it at start.  The reservation keeps counting until then: it expires only
after ``limits.reservation_ttl_s`` (default the total request timeout + 60 s), so a store
outage shorter than that never leaves the key's spend under-counted in between.  (While
Redis itself is down every replica refuses limited keys anyway; the gap that remains is a
replica cut off from a Redis that the others still reach, for longer than the TTL.)

**Where the state lives.**

* With ``redis:`` configured (:mod:`tollway.limits.redis_store`): two Lua scripts, keys
  hash-tagged per API key, Redis' own clock.  Every ``tollway serve`` replica on that Redis
  acts as one.  The settled counter of a period is seeded from the ledger (the sum of the
  period's generation costs) the first time Redis lacks it (``SET NX``), and its TTL is
  refreshed on use.  If Redis is unreachable, keys with limits get 503 ("the spend store
  is unreachable") and the error is logged once per outage: fail closed, never unlimited.
* Without Redis (:mod:`tollway.limits.db_store`): the same logic in the ledger database
  (SQLite or PostgreSQL), serialised per key by a row lock, so every uvicorn worker and
  process sharing the database agrees.  It costs two short transactions per request of a
  limited key (~1.5 ms on SQLite, queued on one thread per process; RPM/TPM add a scan of
  the key's last minute), so deployments with busy limited keys should configure Redis
  (one Lua call to admit and one to settle: ~2,000 req/s on one core in a quick run,
  against ~2,600-4,000 for an unlimited key on the same noisy machine).

**Crashes.**  A reservation carries a TTL (``limits.reservation_ttl_s``, default the total
request timeout + 60 s); a crashed replica's reservations free themselves.  The ledger is
the truth for money: the writer inserts a generation and adds its cost to
``keys.usage_nanousd`` in one transaction, keyed by generation id, so a restart never
double-counts; period usage (``/api/v1/key``) is summed from the generations.

**Top-ups** raise the key's ``limit`` (every period's allowance, for keys that reset);
each is recorded in ``key_credits``.  A key's spendable credit is ``limit`` minus its
spend in the current period (its lifetime spend if it never resets).

**Limits of the guarantee.**  The cap holds as long as the upstream honours the output
cap it is sent and its prompt count stays within the documented bound (true for
byte-level BPE and byte-fallback SentencePiece tokenizers; a file passed by reference
reserves the whole context window).  TPM counts the worst case at admission and the real
total when settled; a request whose worst case exceeds the whole TPM budget is admitted
only into an empty window.  If Redis loses its data (restart without persistence),
counters are re-seeded from the ledger, missing at most the generations still queued in a
writer.
"""

from tollway.limits.limiter import Limiter, has_limits
from tollway.limits.store import Hold

__all__ = ["Hold", "Limiter", "has_limits"]
