"""Plan audio-only renditions (radio) of an audio file or a clip's sound. Pure, no ffmpeg."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.ingest.info import AVInfo
from pipeline.model.keys import rendition_key, spec_hash
from pipeline.model.presets import AudioOutput, Preset
from pipeline.plan.generations import generation_material
from pipeline.plan.kinds import AUDIO_KINDS, AudioKind, FileOfKind


@dataclass(frozen=True)
class AudioPlan(FileOfKind):
    """One audio-only rendition (radio): the programme stereo at a loudness, in a format."""

    preset: str
    name: str
    spec: AudioOutput
    spec_hash: str
    key: str

    @property
    def kind(self) -> AudioKind:
        return AUDIO_KINDS[self.spec.type]


def plan_audio(info: AVInfo, asset_sha256: str, preset: Preset,
               generations: Mapping[str, str] | None = None) -> list[AudioPlan]:
    """The preset's audio renditions of this asset: of an audio file, or of a clip's sound when
    the preset takes it (``from_clips``); none without sound. ``generations``: as for
    :func:`pipeline.plan.image.plan_image`."""
    sound = preset.audio
    if sound is None or info.audio is None or (info.video is not None and not sound.from_clips):
        return []
    plans = []
    for wanted in sound.outputs:
        digest = spec_hash({"preset": preset.label, "output": wanted.model_dump(mode="json"),
                            "length": round(info.video.duration, 3) if info.video else None,
                            **generation_material(generations, preset)})
        key = rendition_key(asset_sha256, preset.label, wanted.name, digest,
                            AUDIO_KINDS[wanted.type].extension)
        plans.append(AudioPlan(preset.label, wanted.name, wanted, digest, key))
    return plans
