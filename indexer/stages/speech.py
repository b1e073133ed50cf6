"""Audio and speech: the track at 16 kHz, then faster-whisper with word timestamps,
assigned to segments."""
from __future__ import annotations

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work


class AudioStage(Stage):
    name = "audio"
    needs = ("info",)
    adds = ("audio",)
    at = 0.55

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.speech

    def applies(self, work: Work) -> bool:
        return bool(work.info.has_audio)

    def run(self, work: Work) -> None:
        from indexer import media

        work.audio = media.load_audio(work.source, sr=16000)


class SpeechStage(Stage):
    name = "speech"
    needs = ("audio", "segments")
    adds = ("transcripts", "words", "language", "language_prob")
    at = 0.6

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.speech

    def model(self, config: IndexConfig) -> str | None:
        return "faster-whisper"

    def applies(self, work: Work) -> bool:
        return work.audio is not None

    def set_threads(self, threads: int) -> None:
        from indexer import speech

        speech.set_num_threads(threads)  # CTranslate2 ignores OMP_NUM_THREADS

    def run(self, work: Work) -> None:
        from indexer import speech

        tr = speech.transcribe(work.audio, model=work.options.speech_model, language=work.options.language)
        work.language, work.language_prob = tr.language, tr.language_probability
        ranges = [(s.start, s.end) for s in work.segments]
        work.transcripts = speech.assign_to_segments(tr, ranges)
        work.words = [
            [[round(w.start, 3), round(w.end, 3), w.word] for w in ws]
            for ws in speech.assign_words_to_segments(tr, ranges)
        ]
