"""The lighting service's algorithms, as the public register shows them (shared/algorithms.py)."""

from __future__ import annotations

from services.lighting.domain.circuit import (
    DRIFT_FRACTION,
    FADING,
    FAILURE_AFTER,
    FAILURE_LAMPS,
    KINDS,
    MIN_LEARNT,
    POWER,
    LightingProcessor,
)
from shared.algorithms import Algorithm, Method, Text
from shared.runtime.cadence import spoken

SERVICE = "lighting"


def algorithms(processor: LightingProcessor) -> tuple[Algorithm, ...]:
    """What `processor` runs: the circuits' faults and the night's energy."""
    tolerance = spoken(processor.town.tolerance)
    drift = round(DRIFT_FRACTION * 100)
    return (
        Algorithm(
            id="lighting.fault_detection",
            service=SERVICE,
            name=Text(
                "Détection des pannes et des écarts de l'éclairage public",
                "Detection of public lighting faults and departures",
            ),
            purpose=Text(
                "Signaler une lampe en panne, un éclairage allumé en plein jour, une armoire "
                "qui ne suit pas les horaires d'extinction et d'abaissement votés par la "
                "commune, ou une consommation qui dérive.",
                "Flag a failed lamp, lights on in daylight, a cabinet not following the "
                "switch-off and dimming hours the council set, or a drifting consumption.",
            ),
            decides=Text(
                "Rien par lui-même : il ouvre une alerte pour l'agent chargé de l'éclairage, "
                "qui vérifie et décide. Aucune armoire n'est commandée.",
                "Nothing by itself: it opens an alert for the lighting officer, who checks "
                "and decides. No cabinet is controlled.",
            ),
            method=Text(
                "Pour chaque armoire, le modèle apprend la puissance appelée allumée, par "
                f"niveau d'abaissement, après {spoken(MIN_LEARNT)[0]} de relevés. Une baisse "
                f"d'au moins {FAILURE_LAMPS:.0%} d'une lampe pendant "
                f"{spoken(FAILURE_AFTER)[0]} est une panne ; une puissance qui s'écarte de "
                f"{drift} % de sa référence est une dérive. Le lever et le coucher du soleil "
                f"sont calculés pour la commune, à {tolerance[0]} près.",
                "For each cabinet the model learns the power drawn when lit, per dimming "
                f"level, after {spoken(MIN_LEARNT)[1]} of readings. A drop of at least "
                f"{FAILURE_LAMPS:.0%} of a lamp for {spoken(FAILURE_AFTER)[1]} is a failure; "
                f"a power {drift} % away from its reference is a drift. Sunrise and sunset "
                f"are computed for the town, within {tolerance[1]}.",
            ),
            oversight=Text(
                "Chaque alerte est lue, acquittée et close par une personne.",
                "Every alert is read, acknowledged and closed by a person.",
            ),
            kind=Method.LEARNT,
            # What learns: each circuit's power per 10 % dimming level.
            model=f"river.stats.EWMean(fading_factor={FADING}) per dimming level",
            inputs=(POWER, "circuit_1_on", "dimming_pct"),
            outputs=(*KINDS, "lighting.controller_silent"),
            retention=("scores", "episodes", "alerts"),
        ),
    )
