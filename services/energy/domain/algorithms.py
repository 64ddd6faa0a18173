"""The energy service's algorithms, as the public register shows them (shared/algorithms.py)."""

from __future__ import annotations

from services.energy.domain.meter import (
    CLOSE_AFTER,
    FORECAST_HOURS,
    METRIC,
    OPEN_AFTER,
    RELEARN_AFTER,
    STUCK_AFTER,
    EnergyProcessor,
)
from shared.algorithms import Algorithm, Figure, Method, Text
from shared.ml.levels import SPREAD_LEARNT
from shared.ml.warmup import WARM_UP_DAYS
from shared.runtime.cadence import spoken

SERVICE = "energy"
KINDS = (
    "energy.consumption_off_hours",
    "energy.consumption_high",
    "energy.consumption_low",
    "energy.level_shift",
    "energy.consumption_drift",
    "energy.meter_stuck",
    "energy.meter_silent",
)
_OPEN, _CLOSE, _STUCK, _RELEARN, _LEVELS = (
    spoken(d) for d in (OPEN_AFTER, CLOSE_AFTER, STUCK_AFTER, RELEARN_AFTER, SPREAD_LEARNT)
)


def algorithms(processor: EnergyProcessor) -> tuple[Algorithm, ...]:
    """What `processor` runs: the anomaly detector and the day-ahead forecaster."""
    return (
        Algorithm(
            id="energy.consumption_anomaly",
            service=SERVICE,
            name=Text(
                "Détection des consommations anormales des bâtiments",
                "Detection of abnormal consumption in buildings",
            ),
            purpose=Text(
                "Signaler une consommation d'électricité très éloignée de l'habitude du "
                "bâtiment (chauffage ou éclairage laissé allumé la nuit, panne, compteur "
                "arrêté) pour que le gaspillage soit corrigé vite.",
                "Flag electricity use far from the building's usual pattern (heating or "
                "lighting left on at night, a fault, a meter that stopped) so that waste is "
                "fixed quickly.",
            ),
            decides=Text(
                "Rien par lui-même : il ouvre une alerte pour le gestionnaire énergie, qui "
                "vérifie sur place et décide d'agir ou non. Aucune commande n'est envoyée aux "
                "bâtiments.",
                "Nothing by itself: it opens an alert for the energy manager, who checks on "
                "site and decides whether to act. No command is sent to the buildings.",
            ),
            method=Text(
                "Pour chaque compteur, le modèle apprend la consommation habituelle de chaque "
                "quart d'heure de la semaine (jours fériés comme des dimanches) et compare "
                "chaque relevé à cette attente. Après "
                f"{_OPEN[0]} de relevés très improbables (probabilité de l'ordre de "
                f"1 sur 1 000), un épisode s'ouvre ; il se ferme après {_CLOSE[0]} de relevés "
                f"normaux (des durées, quel que soit le rythme du compteur). La même valeur "
                f"pendant {_STUCK[0]} signale un compteur bloqué, sauf si ce compteur garde "
                f"souvent la même valeur à cette heure. Un changement qui dure {_RELEARN[0]} "
                "devient la nouvelle habitude. Le modèle apprend aussi l'horaire d'occupation du "
                "bâtiment et sa consommation de base : au-dessus de cette base aux heures "
                "inoccupées (nuits, week-ends, jours fériés), c'est une consommation hors "
                "horaires ; un niveau de la dernière journée (ou des derniers jours) très "
                "différent du niveau habituel est un changement de niveau (ou une dérive), "
                "signalé une fois puis appris, après "
                f"{_LEVELS[0]} d'apprentissage. Aucune alerte avant que le modèle ait vu le "
                f"type de jour et l'heure d'un relevé {WARM_UP_DAYS} jours (« apprentissage »).",
                "For each meter the model learns the usual consumption of every quarter hour "
                "of the week (public holidays like Sundays) and compares each reading with "
                f"it. After {_OPEN[1]} of very improbable readings (about 1 in 1,000), an "
                f"episode opens; it closes after {_CLOSE[1]} of normal readings (durations, "
                "whatever the meter's reporting interval). The same value for "
                f"{_STUCK[1]} flags a stuck meter, unless this meter often holds its value at "
                f"that hour. A change lasting {_RELEARN[1]} becomes the new normal. The model "
                "also learns the building's occupied hours and base load: above that base in "
                "unoccupied hours (nights, weekends, public holidays) is out-of-hours use; a "
                "level over the last day (or last days) far from the usual one is a level shift "
                "(or a drift), alerted once then learnt, after "
                f"{_LEVELS[1]} of learning. No alert "
                "before the model has seen a reading's day type and hour on "
                f'{WARM_UP_DAYS} days ("learning").',
            ),
            oversight=Text(
                "Chaque alerte est lue, acquittée et close par une personne ; ses retours "
                "(vraie ou fausse alerte) servent à évaluer le modèle.",
                "Every alert is read, acknowledged and closed by a person; their feedback "
                "(real or false alert) is used to evaluate the model.",
            ),
            kind=Method.LEARNT,
            inputs=(METRIC,),
            outputs=KINDS,
            retention=("scores", "episodes", "alerts"),
            figures=(Figure.RECALL, Figure.FALSE_ALERTS),
            model=processor.model_names["detector"],
        ),
        Algorithm(
            id="energy.forecast",
            service=SERVICE,
            name=Text(
                "Prévision de consommation des bâtiments",
                "Forecast of building consumption",
            ),
            purpose=Text(
                f"Prévoir la consommation des {FORECAST_HOURS} prochaines heures de chaque "
                "bâtiment, pour préparer les réglages et comparer le réel à l'attendu.",
                f"Forecast each building's consumption over the next {FORECAST_HOURS} hours, "
                "to prepare settings and compare actual use with what was expected.",
            ),
            decides=Text(
                "Rien : la prévision est affichée dans la console ; aucune action n'en découle "
                "automatiquement.",
                "Nothing: the forecast is shown in the console; no action follows from it "
                "automatically.",
            ),
            method=Text(
                "Profil hebdomadaire appris en continu (heure, jour, jours fériés), corrigé par "
                "l'écart le plus récent, qui s'estompe avec l'horizon, et, si la ville a une "
                "sonde de température extérieure, par la réponse du bâtiment à la température "
                "(celle observée la veille à la même heure sert de prévision).",
                "A weekly profile learnt continuously (hour, weekday, public holidays), "
                "corrected by the latest error, which fades with the horizon, and, where the "
                "town has an outdoor temperature sensor, by the building's response to the "
                "temperature (the one observed at the same hour the day before serves as its "
                "forecast).",
            ),
            oversight=Text(
                "L'erreur de prévision est mesurée contre des méthodes simples (valeur de la "
                "veille, de la semaine précédente) à chaque évaluation.",
                "The forecast error is measured against simple methods (yesterday's, last "
                "week's value) at every evaluation.",
            ),
            kind=Method.LEARNT,
            inputs=(METRIC,)
            + (() if processor.temperature_device is None else ("outdoor temperature_c",)),
            outputs=("energy forecasts",),
            retention=("forecasts",),
            figures=(Figure.FORECAST_ERROR_RATIO,),
            model=processor.model_names["forecaster"],
        ),
    )
