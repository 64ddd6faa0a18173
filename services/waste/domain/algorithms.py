"""The waste service's algorithms, as the public register shows them (shared/algorithms.py)."""

from __future__ import annotations

from services.waste.domain.bin import (
    ABNORMAL_EXCESS_PCT,
    FILL,
    FIRE_ABS_C,
    FIRE_JUMP_C,
    JUMP_SHARE,
    MIN_JUMPS,
    STUCK_AFTER,
    TEMPERATURE,
    WasteProcessor,
)
from services.waste.domain.plan import DEFAULT_DETOUR
from shared.algorithms import Algorithm, Figure, Method, Text
from shared.runtime.cadence import spoken

SERVICE = "waste"
KINDS = (
    "waste.abnormal_fill",
    "waste.fire_risk",
    "waste.sensor_stuck",
    "waste.sensor_jumps",
    "waste.sensor_silent",
)


def algorithms(processor: WasteProcessor) -> tuple[Algorithm, ...]:
    """What `processor` runs (fill forecast, anomalies) and the collection round planner."""
    full = f"{processor.full_pct:g}"
    return (
        Algorithm(
            id="waste.fill_forecast",
            service=SERVICE,
            name=Text(
                "Niveau de remplissage et date de remplissage des bacs",
                "Bin fill level and time to full",
            ),
            purpose=Text(
                "Estimer le niveau réel de chaque bac malgré un capteur bruité, et prévoir "
                f"quand il atteindra {full} %, pour ne vider que les bacs qui en ont besoin.",
                "Estimate each bin's real level despite a noisy sensor, and forecast when it "
                f"will reach {full}%, so that only the bins that need it are emptied.",
            ),
            decides=Text(
                "Rien par lui-même : la prévision sert à proposer les tournées (voir le "
                "planificateur), que le responsable de la collecte valide.",
                "Nothing by itself: the forecast is used to propose rounds (see the planner), "
                "which the collection manager approves.",
            ),
            method=Text(
                "Un filtre lisse les relevés et écarte les valeurs impossibles (un saut isolé "
                "non confirmé par le relevé suivant). La vitesse de remplissage est apprise "
                "pour chaque heure de chaque jour de la semaine ; la date de remplissage "
                "prolonge cette vitesse depuis le niveau actuel, avec la marge d'erreur "
                "propre au bac.",
                "A filter smooths the readings and sets aside impossible values (a lone jump "
                "the next reading does not confirm). The filling speed is learnt for each hour "
                "of each weekday; the time to full extends that speed from the current level, "
                "with the bin's own margin of error.",
            ),
            oversight=Text(
                "Les agents de collecte constatent le niveau réel à chaque passage ; les "
                "collectes détectées servent à mesurer l'erreur des prévisions.",
                "Collection crews see the real level at every visit; detected collections are "
                "used to measure the forecasts' error.",
            ),
            kind=Method.LEARNT,
            inputs=(FILL,),
            outputs=("cleaned fill level", "time to full"),
            retention=("scores", "episodes"),
            figures=(Figure.FORECAST_ERROR_RATIO,),
            model=processor.model_names["fill_rate"],
        ),
        Algorithm(
            id="waste.anomaly",
            service=SERVICE,
            name=Text(
                "Alertes sur les bacs : dépôt anormal, risque d'incendie, capteur défaillant",
                "Bin alerts: abnormal dumping, fire risk, failing sensor",
            ),
            purpose=Text(
                "Prévenir quand un bac se remplit bien plus vite que d'habitude (dépôt "
                "sauvage, événement), quand sa température fait craindre un feu, ou quand son "
                "capteur ne fonctionne plus.",
                "Warn when a bin fills much faster than usual (fly-tipping, an event), when "
                "its temperature suggests a fire, or when its sensor stops working.",
            ),
            decides=Text(
                "Rien par lui-même : il ouvre une alerte pour l'équipe de la collecte, qui "
                "décide d'une intervention.",
                "Nothing by itself: it opens an alert for the collection team, who decide "
                "whether to intervene.",
            ),
            method=Text(
                f"Règles fixes : une hausse d'au moins {ABNORMAL_EXCESS_PCT:g} points de plus "
                "que prévu en deux heures ; une température au-dessus de "
                f"{FIRE_ABS_C:g} °C ou {FIRE_JUMP_C:g} °C au-dessus de son niveau récent ; "
                f"la même valeur pendant {spoken(STUCK_AFTER)[0]}, là où ce capteur la garde "
                f"rarement ; des sauts impossibles sur 1 relevé sur {round(1 / JUMP_SHARE)} "
                f"d'une journée ({MIN_JUMPS} au moins) ; un silence de plusieurs périodes "
                "d'émission.",
                f"Fixed rules: a rise at least {ABNORMAL_EXCESS_PCT:g} points more than "
                f"expected within two hours; a temperature above {FIRE_ABS_C:g} °C or "
                f"{FIRE_JUMP_C:g} °C above its recent level; the same value for "
                f"{spoken(STUCK_AFTER)[1]} where this sensor seldom holds it; impossible jumps "
                f"on 1 reading in {round(1 / JUMP_SHARE)} over a day ({MIN_JUMPS} at least); "
                "silence for several reporting periods.",
            ),
            oversight=Text(
                "Chaque alerte est lue, acquittée et close par une personne.",
                "Every alert is read, acknowledged and closed by a person.",
            ),
            kind=Method.RULES,
            inputs=(FILL, TEMPERATURE),
            outputs=KINDS,
            retention=("episodes", "alerts"),
            figures=(Figure.RECALL, Figure.FALSE_ALERTS),
        ),
        Algorithm(
            id="waste.route_plan",
            service=SERVICE,
            name=Text("Planification des tournées de collecte", "Collection round planning"),
            purpose=Text(
                "Proposer quels bacs vider et dans quel ordre, pour rouler moins (carburant, "
                "CO2) sans laisser déborder les bacs.",
                "Propose which bins to empty and in which order, to drive less (fuel, CO2) "
                "without letting bins overflow.",
            ),
            decides=Text(
                "Rien par lui-même : c'est une proposition, calculée à la demande d'un agent ; "
                "le responsable de la collecte la suit, la modifie ou l'écarte.",
                "Nothing by itself: it is a proposal, computed when a staff member asks; the "
                "collection manager follows, changes or sets it aside.",
            ),
            method=Text(
                "Retient les bacs pleins ou prévus pleins avant la tournée suivante, puis "
                "cherche l'ordre de passage le plus court pour les camions disponibles "
                "(optimisation de tournées, distances à vol d'oiseau multipliées par "
                f"{DEFAULT_DETOUR:g} pour tenir compte des rues).",
                "Keeps the bins full or forecast full before the next round, then searches "
                "the shortest visiting order for the available trucks (vehicle routing, "
                f"straight-line distances times {DEFAULT_DETOUR:g} to allow for streets).",
            ),
            oversight=Text(
                "Le plan affiche les kilomètres comparés à une tournée simple ; rien n'est "
                "envoyé aux équipes sans qu'une personne le décide.",
                "The plan shows its kilometres against a simple round; nothing reaches the "
                "crews unless a person decides so.",
            ),
            kind=Method.OPTIMISATION,
            inputs=(FILL,),
            outputs=("proposed collection rounds",),
            retention=(),
        ),
    )
