"""The report's words in French and English, and its numbers written the way each reads them.

Kept beside the PDF's layout rather than in the console's catalogues: these are a document's
sentences (with their methods), read together when the report changes.
"""

from __future__ import annotations

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"

WORDS: dict[str, tuple[str, str]] = {
    # key: (French, English)
    "title": ("Bilan de la commune", "The town's balance sheet"),
    "period": (
        "Période du {start} au {end} (exclu), heure de {tz}",
        "Period {start} to {end} (exclusive), {tz} time",
    ),
    "generated": (
        "Produit le {at} ; facteurs version {version}",
        "Generated {at}; factors version {version}",
    ),
    "summary": ("En bref", "Summary"),
    "energy": ("Énergie des bâtiments", "Buildings' energy"),
    "consumed": ("Consommé", "Consumed"),
    "expected": ("Attendu", "Expected"),
    "anomalies": ("Anomalies (épisodes)", "Anomalies (episodes)"),
    "excess_kwh": ("Excès pendant les anomalies", "Excess during anomalies"),
    "excess_cost": (
        "Coût de l'excès au tarif de la commune",
        "Cost of the excess at the town's tariff",
    ),
    "confirmed": ("Confirmées par les techniciens", "Confirmed by technicians"),
    "not_available": ("non disponible", "not available"),
    "top_buildings": ("Bâtiments à examiner en priorité", "Buildings to look at first"),
    "building": ("Bâtiment", "Building"),
    "episodes": ("Épisodes", "Episodes"),
    "chart_energy": (
        "Consommé et attendu par bâtiment (kWh)",
        "Consumed and expected per building (kWh)",
    ),
    "waste": ("Collecte des déchets", "Waste collection"),
    "plan_days": ("Jours avec une tournée planifiée", "Days with a planned round"),
    "planned_km": ("Tournées planifiées", "Planned rounds"),
    "plan_weeks": ("Semaines couvertes par ces tournées", "Weeks these rounds cover"),
    "fixed_km": (
        "Calendrier fixe de la commune ({visits} passages par bac et par semaine)",
        "The town's fixed schedule ({visits} visits per bin a week)",
    ),
    "fixed_short": ("Calendrier fixe", "Fixed schedule"),
    "every_bin_tour_km": (
        "Une tournée de tous les bacs (moyenne)",
        "One tour of every bin (mean)",
    ),
    "bins_emptied": (
        "Bacs vidés : planifié / calendrier fixe",
        "Bins emptied: planned / fixed schedule",
    ),
    "saved_km": ("Distance évitée", "Distance saved"),
    "saved_fuel": ("Gazole évité", "Diesel saved"),
    "saved_co2e": ("CO2e évité par la collecte", "CO2e avoided by the collection"),
    "collections": ("Collectes constatées", "Collections seen"),
    "overflows": ("Bacs débordants avant collecte", "Bins overflowing before collection"),
    "low_fill": ("Bacs collectés sous {pct} % de remplissage", "Bins collected below {pct} % full"),
    "chart_waste": (
        "Distance des tournées sur la période (km)",
        "Distance of the rounds over the period (km)",
    ),
    "traffic": ("Circulation", "Traffic"),
    "incidents": ("Incidents", "Incidents"),
    "congestion_h": ("Heures de congestion", "Congestion hours"),
    "previous": ("période précédente", "previous period"),
    "previous_short": ("préc.", "prev."),
    "counter": ("Compteur", "Counter"),
    "chart_traffic": (
        "Incidents par compteur : période et période précédente",
        "Incidents per counter: this period and the previous",
    ),
    "lighting": ("Éclairage public", "Public lighting"),
    "lighting_used": ("Consommation des armoires", "Used by the cabinets"),
    "lighting_all_night": (
        "Éclairage toute la nuit à pleine puissance (référence)",
        "Lit all night at full power (baseline)",
    ),
    "lighting_saved": (
        "Économisé par l'abaissement et l'extinction",
        "Saved by dimming and switch-off",
    ),
    "lighting_saved_eur": ("Économie", "Saving"),
    "lighting_saved_co2e": ("CO2e évité par l'éclairage", "CO2e avoided by the lighting"),
    "cabinet": ("Armoire", "Cabinet"),
    "quality": ("Qualité des données", "Data quality"),
    "devices": ("Capteurs enregistrés", "Registered sensors"),
    "silent": ("Capteurs muets sur toute la période", "Sensors silent over the whole period"),
    "deadletters": ("Messages rejetés", "Rejected messages"),
    "reason": ("Motif", "Reason"),
    "links": ("Liaisons radio (LoRaWAN) suivies", "Radio links (LoRaWAN) followed"),
    "weak_links": (
        "Liaisons faibles (RSSI médian < {dbm} dBm)",
        "Weak links (median RSSI < {dbm} dBm)",
    ),
    "alerts": ("Alertes ouvertes (dont acquittées)", "Alerts opened (of which acknowledged)"),
    "footprint": ("Empreinte de la plateforme elle-même", "The platform's own footprint"),
    "component": ("Composant", "Component"),
    "cpu_s": ("Temps CPU (s)", "CPU time (s)"),
    "memory": ("Mémoire moyenne (Mo)", "Mean memory (MB)"),
    "fp_kwh": ("Électricité", "Electricity"),
    "fp_energy": ("CO2e de l'électricité", "CO2e of the electricity"),
    "fp_manufacture": ("CO2e de fabrication amortie", "Amortised manufacture CO2e"),
    "fp_total": ("CO2e total de la plateforme", "Platform's total CO2e"),
    "fp_coverage": ("Période couverte par les mesures", "Share of the period measured"),
    "balance": ("Bilan carbone", "Carbon balance"),
    "avoided": ("CO2e évité (collecte)", "CO2e avoided (collection)"),
    "platform": ("CO2e de la plateforme", "Platform's CO2e"),
    "net": ("Solde (évité moins émis)", "Net (avoided minus emitted)"),
    "energy_waste_co2e": (
        "CO2e de l'excès d'énergie détecté (à corriger)",
        "CO2e of the excess energy detected (to fix)",
    ),
    "appendix": ("Annexe : méthodes et facteurs", "Appendix: methods and factors"),
    "factors": ("Facteurs utilisés", "Factors used"),
    "page": ("page {n}", "page {n}"),
    "none": ("aucun", "none"),
}

# Each query's method in plain words (the SQL follows it in the appendix).
METHODS: dict[str, tuple[str, str]] = {
    "energy_buildings": (
        "Somme, par compteur, des kWh mesurés et des kWh attendus par le modèle du compteur "
        "(table energy_scores), pour chaque relevé de la période.",
        "Sum, per meter, of the kWh measured and the kWh the meter's model expected "
        "(table energy_scores), over every reading of the period.",
    ),
    "energy_anomalies": (
        "Épisodes d'anomalie commencés dans la période (energy_episodes), par compteur.",
        "Anomaly episodes that began in the period (energy_episodes), per meter.",
    ),
    "energy_excess": (
        "Excès = kWh mesurés moins attendus, comptés quand ils sont positifs, sur les relevés "
        "de la période que le modèle a jugés anormaux (energy_scores) ; coût = excès x tarif.",
        "Excess = kWh measured minus expected, when positive, over the period's readings the "
        "model flagged as anomalous (energy_scores); cost = excess x tariff.",
    ),
    "waste_plans": (
        "Le plan de chaque jour de tournée, enregistré une fois par le service déchets à l'heure "
        "de la tournée (waste_plans), est comparé au calendrier fixe que la commune suivait "
        "avant, sur les mêmes semaines. Chaque jour enregistré compte pour 1/r semaine (r jours "
        "de tournée par semaine) ; pendant ces semaines, le calendrier fixe vide chaque bac v "
        "fois par semaine (réglage fixed_visits_per_week, enregistré avec chaque plan) : ses km "
        "= km d'une tournée de tous les bacs depuis le même dépôt le même jour x v x semaines "
        "(somme sur les jours de every_bin_km x v / r). Évité = km du calendrier fixe moins km "
        "planifiés ; gazole et CO2e = km x facteurs du camion. Une semaine sans plan enregistré "
        "ne compte d'aucun côté.",
        "Each round day's plan, recorded once by the waste service at the round hour "
        "(waste_plans), is compared with the fixed schedule the town followed before, over the "
        "same weeks. Each recorded day counts for 1/r of a week (r round days a week); over "
        "those weeks the fixed schedule empties every bin v times a week (setting "
        "fixed_visits_per_week, recorded with each plan): its km = km of a tour of every bin "
        "from the same depot on the same day x v x weeks (the sum over the days of "
        "every_bin_km x v / r). Saved = the fixed schedule's km minus the planned km; diesel "
        "and CO2e = km x the truck's factors. A week without its plans counts on neither side.",
    ),
    "waste_collections": (
        "Collectes détectées sur les capteurs (waste_collections) ; débordant = niveau avant "
        "collecte au moins 100 % ; trop tôt = niveau avant collecte sous le seuil utile.",
        "Collections detected by the sensors (waste_collections); overflowing = level before "
        "collection at least 100 %; too early = level before collection below the useful fill.",
    ),
    "traffic_counters": (
        "Épisodes des compteurs commencés dans la période (traffic_episodes) : incidents "
        "comptés, congestion en heures jusqu'à sa fin ou la fin de la période ; même calcul "
        "pour la période précédente.",
        "Counter episodes that began in the period (traffic_episodes): incidents counted, "
        "congestion in hours until it ended or the period did; the same for the previous period.",
    ),
    "lighting_circuits": (
        "Relevés des armoires d'éclairage dans la période (lighting_readings) : consommation = "
        "somme de l'énergie de chaque relevé ; économie = énergie qu'aurait consommée "
        "l'éclairage toute la nuit, du coucher au lever du soleil, à la pleine puissance apprise "
        "de chaque circuit (baseline_kwh, écrite par le service d'éclairage), moins l'énergie "
        "consommée par ces mêmes relevés de nuit ; en euros et en CO2e par les facteurs.",
        "Lighting cabinets' readings in the period (lighting_readings): used = the sum of each "
        "reading's energy; saved = what lighting all night, sunset to sunrise, at each "
        "circuit's learnt full power would have used (baseline_kwh, written by the lighting "
        "service), less what those night readings used; in euros and CO2e by the factors.",
    ),
    "quality_devices": (
        "Capteurs enregistrés à la fin de la période (devices) ; muet = aucun relevé stocké "
        "dans la période (readings).",
        "Sensors registered at the end of the period (devices); silent = no reading stored in "
        "the period (readings).",
    ),
    "quality_deadletters": (
        "Messages refusés à l'entrée, par motif (deadletters), reçus dans la période.",
        "Messages refused at ingest, by reason (deadletters), received in the period.",
    ),
    "quality_links": (
        "Remontées LoRaWAN de la période (device_uplinks) ; liaison faible = RSSI médian du "
        "capteur sous le seuil.",
        "LoRaWAN uplinks of the period (device_uplinks); weak link = the device's median RSSI "
        "below the threshold.",
    ),
    "alerts": (
        "Alertes ouvertes dans la période (alerts), et celles qu'une personne a acquittées.",
        "Alerts opened in the period (alerts), and those a person acknowledged.",
    ),
    "footprint": (
        "Temps CPU et mémoire de chaque composant, échantillonnés par la pile (/proc), "
        "convertis en kWh par le modèle de puissance du serveur, puis en CO2e par le facteur "
        "du réseau électrique ; plus la part amortie de la fabrication du serveur.",
        "CPU time and memory of every component, sampled by the stack (/proc), converted to "
        "kWh with the server's power model, then to CO2e with the grid's factor; plus the "
        "amortised share of the server's manufacture.",
    ),
    "balance": (
        "CO2e évité par la collecte (ci-dessus) moins CO2e total de la plateforme. L'excès "
        "d'énergie détecté est montré à part : sans retour des techniciens, on ne sait pas "
        "quelle part a été corrigée.",
        "CO2e avoided by the collection (above) minus the platform's total CO2e. The excess "
        "energy detected is shown apart: without technicians' feedback, how much was fixed is "
        "not known.",
    ),
}


def word(key: str, lang: str, **values: object) -> str:
    """
    >>> word("page", "fr", n=2), word("page", "en", n=2)
    ('page 2', 'page 2')
    """
    text = WORDS[key][LANGUAGES.index(lang)]
    return text.format(**values) if values else text


def method(key: str, lang: str) -> str:
    return METHODS[key][LANGUAGES.index(lang)]


def number(value: float | int | None, lang: str, *, digits: int = 1) -> str:
    """A figure as the reader writes it: French groups thousands with a space and uses a comma.

    >>> number(12345.678, "fr"), number(12345.678, "en"), number(3, "fr", digits=0)
    ('12 345,7', '12,345.7', '3')
    >>> number(None, "en")
    'n/a'
    """
    if value is None:
        return "n/a" if lang == "en" else "n.d."
    text = f"{value:,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", " ").replace(".", ",")
    return text
