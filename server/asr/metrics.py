"""Operators' metrics of speech recognition, in the Prometheus client's default registry (served at ``/metrics``):
the decode queue's depth, how long decodes wait and take, how many run together in one backend call (batch size:
up to ``asr_max_batch``), the audio decoded (its rate over the rate of decode seconds is the worker's speed), partials
dropped under load, and the latency users see for final captions."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

KINDS = ("final", "partial")
_SECONDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

queue_depth = Gauge("moot_asr_queue_depth", "Decodes waiting for the speech worker, by kind", ["kind"])
decode_seconds = Histogram("moot_asr_decode_seconds", "Time one decode call (one batch) took, by its most urgent kind",
                           ["kind"], buckets=_SECONDS)
wait_seconds = Histogram("moot_asr_wait_seconds", "Time a decode waited in the queue", ["kind"], buckets=_SECONDS)
batch_size = Histogram("moot_asr_batch_size", "Decodes run together in one call", buckets=(1, 2, 4, 8, 16, 32, 64))
audio_seconds = Counter("moot_asr_decoded_audio_seconds_total", "Seconds of audio decoded (partials re-decode theirs)")
partials_dropped = Counter("moot_asr_partials_dropped_total", "Partial decodes dropped because too many waited")
decodes_skipped = Counter("moot_asr_decodes_skipped_total", "Decodes skipped because they were no longer wanted")
final_latency_seconds = Histogram("moot_asr_final_latency_seconds",
                                  "End of an utterance's speech to its final caption on the bus", buckets=_SECONDS)
finals_total = Counter("moot_asr_finals_total", "Final captions published")

for _kind in KINDS:  # the series exist (at zero) from the start
    queue_depth.labels(_kind)
    decode_seconds.labels(_kind)
    wait_seconds.labels(_kind)
