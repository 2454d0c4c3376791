"""Live speech recognition: per-speaker voice-activity segmentation, streaming Whisper with a commit policy that never
rewrites committed words, and caption events on the bus."""

from server.core.speech import CaptionService, SpeakerAudioSink

__all__ = ["CaptionService", "SpeakerAudioSink"]
