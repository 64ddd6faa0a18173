"""The traffic service's algorithms, as the public register shows them (shared/algorithms.py)."""

from __future__ import annotations

from services.traffic.domain.counter import (
    CLOSE_AFTER,
    FORECAST_STEPS,
    KINDS,
    OPEN_AFTER,
    SPEED,
    VEHICLES,
    TrafficProcessor,
)
from shared.algorithms import Algorithm, Figure, Method, Text
from shared.ml.warmup import WARM_UP_DAYS
from shared.runtime.cadence import spoken

SERVICE = "traffic"


def algorithms(processor: TrafficProcessor) -> tuple[Algorithm, ...]:
    """What `processor` runs: incident detection and the next hour's forecast."""
    model = processor.model_names["detector"]
    return (
        Algorithm(
            id="traffic.incident_detection",
            service=SERVICE,
            name=Text(
                "Détection des incidents et des bouchons",
                "Detection of incidents and congestion",
            ),
            purpose=Text(
                "Signaler un trafic bien plus faible ou plus lent que d'habitude sur une route "
                "(accident, travaux, voie fermée, bouchon) ou bien plus fort (événement, "
                "déviation).",
                "Flag traffic much lighter or slower than usual on a road (an accident, road "
                "works, a closed lane, a jam) or much heavier (an event, a diversion).",
            ),
            decides=Text(
                "Rien par lui-même : il ouvre une alerte pour l'agent de la voirie, qui "
                "vérifie et décide. Aucun feu ni panneau n'est commandé.",
                "Nothing by itself: it opens an alert for the roads officer, who checks and "
                "decides. No traffic light or sign is controlled.",
            ),
            method=Text(
                "Pour chaque compteur, le modèle apprend le nombre de véhicules et la vitesse "
                "habituels de chaque quart d'heure de la semaine. Après "
                f"{spoken(OPEN_AFTER)[0]} de relevés très improbables, un épisode s'ouvre ; il "
                f"se ferme après {spoken(CLOSE_AFTER)[0]} de relevés normaux. Aucune alerte "
                f"avant que le modèle ait vu le type de jour et l'heure {WARM_UP_DAYS} jours. "
                "Les véhicules sont comptés, jamais identifiés.",
                "For each counter the model learns the usual number of vehicles and speed of "
                f"every quarter hour of the week. After {spoken(OPEN_AFTER)[1]} of very "
                "improbable readings an episode opens; it closes after "
                f"{spoken(CLOSE_AFTER)[1]} of normal readings. No alert before the model has "
                f"seen the day type and hour on {WARM_UP_DAYS} days. "
                "Vehicles are counted, never identified.",
            ),
            oversight=Text(
                "Chaque alerte est lue, acquittée et close par une personne.",
                "Every alert is read, acknowledged and closed by a person.",
            ),
            kind=Method.LEARNT,
            inputs=(VEHICLES, SPEED),
            outputs=(*KINDS, "traffic.counter_silent"),
            retention=("scores", "episodes", "alerts"),
            figures=(Figure.RECALL, Figure.FALSE_ALERTS),
            model=model,
        ),
        Algorithm(
            id="traffic.forecast",
            service=SERVICE,
            name=Text("Prévision du trafic de l'heure à venir", "Forecast of the next hour"),
            purpose=Text(
                "Prévoir le nombre de véhicules de la prochaine heure sur chaque compteur.",
                "Forecast the number of vehicles over the next hour at each counter.",
            ),
            decides=Text(
                "Rien : la prévision est affichée dans la console.",
                "Nothing: the forecast is shown in the console.",
            ),
            method=Text(
                "Le profil hebdomadaire du compteur, corrigé par l'écart le plus récent, pour "
                f"les {FORECAST_STEPS} prochains quarts d'heure, avec un intervalle à 90 %.",
                "The counter's weekly profile, corrected by the latest error, for the next "
                f"{FORECAST_STEPS} quarter hours, with a 90% interval.",
            ),
            oversight=Text(
                "L'erreur de prévision est mesurée contre des méthodes simples (dernière "
                "valeur, semaine précédente) à chaque évaluation.",
                "The forecast error is measured against simple methods (last value, previous "
                "week) at every evaluation.",
            ),
            kind=Method.LEARNT,
            inputs=(VEHICLES,),
            outputs=("traffic forecasts",),
            retention=("forecasts",),
            figures=(Figure.FORECAST_ERROR_RATIO,),
            model=model,
        ),
    )
