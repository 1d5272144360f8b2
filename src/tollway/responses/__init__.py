"""The OpenAI Responses API (``POST /v1/responses``) in front of every wire format.

* :mod:`.request`: a Responses body read once into an OpenAI chat body (what the router,
  the limiter and every adapter take), plus what the reply needs (tools' namespaces, the
  built-in tools dropped, reasoning to hand back to the upstream that produced it).
* :mod:`.output`: a ``chat.completion`` as a ``response`` object; output items; usage.
* :mod:`.events`: a stream of chat chunks as Responses events (``response.created`` ...
  ``response.completed``), with ``sequence_number``.
* :mod:`.native`: the body passed straight through to a provider flagged
  ``responses: native``, its events relayed.
* :mod:`.store`: stored responses (``store: true``), per key, with a TTL.
"""
