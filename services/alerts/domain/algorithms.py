"""The alerts service's algorithms, as the public register shows them (shared/algorithms.py).

Its rules are written by the town's operators (alert rules in the API): the register describes
the mechanism; which thresholds are set is the town's configuration, visible to its operators.
"""

from __future__ import annotations

from shared.algorithms import ANY_METRIC, Algorithm, Figure, Method, Text

SERVICE = "alerts"

ALGORITHMS = (
    Algorithm(
        id="alerts.threshold_rules",
        service=SERVICE,
        name=Text("Règles de seuil des agents", "Staff-written threshold rules"),
        purpose=Text(
            "Prévenir quand une mesure franchit un seuil choisi par les agents de la ville "
            "(par exemple un bac rempli à 90 %, une température trop haute).",
            "Warn when a reading crosses a threshold chosen by the town's staff (for example "
            "a bin 90% full, a temperature too high).",
        ),
        decides=Text(
            "Rien par lui-même : il ouvre une alerte et prévient les personnes abonnées, qui "
            "décident quoi faire.",
            "Nothing by itself: it opens an alert and notifies the people subscribed, who "
            "decide what to do.",
        ),
        method=Text(
            "Comparaison de chaque relevé au seuil de la règle, avec une marge de retour "
            "(hystérésis) pour ne pas alerter sans cesse autour du seuil, une durée minimale "
            "et un délai entre deux alertes.",
            "Each reading is compared with the rule's threshold, with a return margin "
            "(hysteresis) so as not to alert again and again around the threshold, a minimum "
            "duration and a cool-down between two alerts.",
        ),
        oversight=Text(
            "Les règles sont écrites et modifiées par des agents habilités (opérations "
            "journalisées) ; chaque alerte est acquittée et close par une personne.",
            "Rules are written and changed by authorised staff (every change is logged); every "
            "alert is acknowledged and closed by a person.",
        ),
        kind=Method.RULES,
        inputs=(ANY_METRIC,),
        outputs=("<domain>.<metric>_high", "<domain>.<metric>_low"),
        retention=("alerts",),
        figures=(Figure.FALSE_ALERTS,),
    ),
    Algorithm(
        id="alerts.silent_devices",
        service=SERVICE,
        name=Text("Capteurs muets", "Silent sensors"),
        purpose=Text(
            "Repérer un capteur qui n'envoie plus rien (pile vide, panne, vandalisme).",
            "Spot a sensor that no longer sends anything (flat battery, fault, vandalism).",
        ),
        decides=Text(
            "Rien par lui-même : il ouvre une alerte pour l'équipe technique.",
            "Nothing by itself: it opens an alert for the technical team.",
        ),
        method=Text(
            "Le rythme habituel d'émission de chaque capteur est appris (moyenne glissante "
            "des intervalles) ; un silence de plusieurs fois ce rythme ouvre une alerte.",
            "Each sensor's usual reporting pace is learnt (a running mean of its gaps); a "
            "silence of several times that pace opens an alert.",
        ),
        oversight=Text(
            "Chaque alerte est acquittée et close par une personne.",
            "Every alert is acknowledged and closed by a person.",
        ),
        kind=Method.RULES,
        inputs=(ANY_METRIC,),
        outputs=("<domain>.silent",),
        retention=("alerts",),
    ),
)
