"""What the rule-based facilitator says, as message keys with parameters, in English, French, German, Spanish and
Dutch: the engine says each message in its room's language (``say``), and the translation worker renders the same
key for each other language its readers read, so a rule message reaches everyone in their language without machine
translation. Parameters named in ``CONTENT`` are text from the template or the room (a stage's title, the question,
statements) in their own language; the rest are names and numbers. A content parameter may give its text in several
languages (``{"en": "Welcome", "fr": "Bienvenue"}``: a template's translations); each language's message takes its
own, else the first (see ``complete``).

Add a language by adding its table (a test checks every table has every key with the same parameters).
"""

from __future__ import annotations

import re

from server.core.events import base_language

CONTENT = frozenset({"stage", "next", "question", "intro", "quotes", "text"})
DEFAULT = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Welcome, {name}. We are in \"{stage}\", talking about: {question} Join in whenever you are "
                    "ready.",
        "safety.abuse": "Let's keep this conversation respectful, so that everyone feels able to speak. Disagreement "
                        "is welcome; personal attacks are not. I have let the moderator know.",
        "safety.off_topic": "Let's bring the conversation back to our question: {question}",
        "time.left": "{duration} left for \"{stage}\".",
        "time.left_then": "{duration} left for \"{stage}\". Then we move on to \"{next}\".",
        "invite": "{name}, we haven't heard much from you yet. Would you like to add anything? It's fine to pass.",
        "balance": "Thank you, {name}, that's helpful. Let's make room for others too: who sees this differently?",
        "voting.done": "Everyone has voted on every statement, so let's move on.",
        "results.agreed": "Broad agreement: {quotes}.",
        "results.none": "No statement had broad agreement.",
        "results.divided": "These divide the group, and both views deserve to be heard: {quotes}.",
        "results.tally": "({agree} agree, {disagree} disagree, {passed} pass)",
        "closing": "Our time is up. Thank you all for taking part; the transcript and results stay available to the "
                   "organisers.",
        "stage_intro": "{stage} ({duration}). {intro}",
        "ask": "{text}",
        "silence": "It has gone quiet. Would anyone like to add something, or respond to what has been said so far?",
        "duration.seconds": "{count} seconds",
        "duration.minute": "one minute",
        "duration.minutes": "{count} minutes",
        "llm.language": "Write in English.",
        "summary.heading": "Summary so far (written by AI; tell us if it misses or misstates anything):",
        "label.point": "Key point",
        "label.agreement": "Agreement",
        "label.disagreement": "Disagreement",
        "label.question": "Open question",
        "statements.proposed": "I have proposed {count} statements based on what you said. Please edit them, add "
                               "your own, or say what is missing.",
    },
    "fr": {
        "greeting": "Bienvenue, {name}. Nous en sommes à \u00ab\u00a0{stage}\u00a0\u00bb, et nous parlons de\u00a0: "
                    "{question} Intervenez quand vous le souhaitez.",
        "safety.abuse": "Restons respectueux, pour que chacun se sente libre de parler. Les désaccords sont les "
                        "bienvenus\u00a0; les attaques personnelles, non. J'ai prévenu le modérateur.",
        "safety.off_topic": "Revenons à notre question\u00a0: {question}",
        "time.left": "Il reste {duration} pour \u00ab\u00a0{stage}\u00a0\u00bb.",
        "time.left_then": "Il reste {duration} pour \u00ab\u00a0{stage}\u00a0\u00bb. Ensuite, nous passerons à "
                          "\u00ab\u00a0{next}\u00a0\u00bb.",
        "invite": "{name}, nous ne vous avons pas encore beaucoup entendu. Voulez-vous ajouter quelque chose\u00a0? "
                  "Vous pouvez aussi passer.",
        "balance": "Merci, {name}, c'est utile. Laissons aussi de la place aux autres\u00a0: qui voit les choses "
                   "autrement\u00a0?",
        "voting.done": "Tout le monde a voté sur chaque proposition, passons à la suite.",
        "results.agreed": "Large accord\u00a0: {quotes}.",
        "results.none": "Aucune proposition n'a recueilli un large accord.",
        "results.divided": "Celles-ci divisent le groupe, et les deux points de vue méritent d'être entendus\u00a0: "
                           "{quotes}.",
        "results.tally": "({agree} pour, {disagree} contre, {passed} abstention)",
        "closing": "Le temps est écoulé. Merci à toutes et à tous d'avoir participé\u00a0; la transcription et les "
                   "résultats restent à la disposition des organisateurs.",
        "stage_intro": "{stage} ({duration}). {intro}",
        "ask": "{text}",
        "silence": "C'est devenu calme. Quelqu'un souhaite-t-il ajouter quelque chose, ou réagir à ce qui a été "
                   "dit\u00a0?",
        "duration.seconds": "{count} secondes",
        "duration.minute": "une minute",
        "duration.minutes": "{count} minutes",
        "llm.language": "Écris en français.",
        "summary.heading": "Résumé jusqu'ici (rédigé par l'IA\u00a0; dites-nous s'il oublie ou déforme quelque "
                           "chose)\u00a0:",
        "label.point": "Point clé",
        "label.agreement": "Accord",
        "label.disagreement": "Désaccord",
        "label.question": "Question ouverte",
        "statements.proposed": "J'ai rédigé {count} propositions à partir de ce que vous avez dit. Modifiez-les, "
                               "ajoutez les vôtres, ou dites ce qui manque.",
    },
    "de": {
        "greeting": "Willkommen, {name}. Wir sind bei \u201e{stage}\u201c und sprechen über: {question} Steigen Sie "
                    "ein, wann immer Sie möchten.",
        "safety.abuse": "Bleiben wir respektvoll, damit sich alle trauen zu sprechen. Widerspruch ist willkommen, "
                        "persönliche Angriffe nicht. Ich habe die Moderation informiert.",
        "safety.off_topic": "Kommen wir zurück zu unserer Frage: {question}",
        "time.left": "Noch {duration} für \u201e{stage}\u201c.",
        "time.left_then": "Noch {duration} für \u201e{stage}\u201c. Danach geht es weiter mit \u201e{next}\u201c.",
        "invite": "{name}, von Ihnen haben wir noch wenig gehört. Möchten Sie etwas ergänzen? Sie können auch "
                  "aussetzen.",
        "balance": "Danke, {name}, das hilft. Lassen wir auch anderen Raum: Wer sieht das anders?",
        "voting.done": "Alle haben über jede Aussage abgestimmt, also machen wir weiter.",
        "results.agreed": "Breite Zustimmung: {quotes}.",
        "results.none": "Keine Aussage fand breite Zustimmung.",
        "results.divided": "Diese teilen die Gruppe, und beide Sichtweisen verdienen Gehör: {quotes}.",
        "results.tally": "({agree} dafür, {disagree} dagegen, {passed} enthalten)",
        "closing": "Unsere Zeit ist um. Danke an alle fürs Mitmachen; Transkript und Ergebnisse bleiben für die "
                   "Veranstalter verfügbar.",
        "stage_intro": "{stage} ({duration}). {intro}",
        "ask": "{text}",
        "silence": "Es ist still geworden. Möchte jemand etwas ergänzen oder auf das Gesagte eingehen?",
        "duration.seconds": "{count} Sekunden",
        "duration.minute": "eine Minute",
        "duration.minutes": "{count} Minuten",
        "llm.language": "Schreibe auf Deutsch.",
        "summary.heading": "Zusammenfassung bisher (von der KI verfasst; sagen Sie uns, wenn etwas fehlt oder "
                           "falsch ist):",
        "label.point": "Kernpunkt",
        "label.agreement": "Übereinstimmung",
        "label.disagreement": "Meinungsverschiedenheit",
        "label.question": "Offene Frage",
        "statements.proposed": "Ich habe {count} Aussagen auf Grundlage des Gesagten vorgeschlagen. Bitte "
                               "bearbeiten Sie sie, fügen Sie eigene hinzu oder sagen Sie, was fehlt.",
    },
    "es": {
        "greeting": "Bienvenida/o, {name}. Estamos en \u00ab{stage}\u00bb, hablando de: {question} Participe cuando "
                    "quiera.",
        "safety.abuse": "Mantengamos el respeto, para que todos se sientan libres de hablar. Los desacuerdos son "
                        "bienvenidos; los ataques personales, no. He avisado al moderador.",
        "safety.off_topic": "Volvamos a nuestra pregunta: {question}",
        "time.left": "Quedan {duration} para \u00ab{stage}\u00bb.",
        "time.left_then": "Quedan {duration} para \u00ab{stage}\u00bb. Después pasaremos a \u00ab{next}\u00bb.",
        "invite": "{name}, aún no le hemos oído mucho. ¿Quiere añadir algo? También puede pasar.",
        "balance": "Gracias, {name}, es útil. Dejemos espacio también a los demás: ¿quién lo ve de otra manera?",
        "voting.done": "Todos han votado todas las propuestas, así que sigamos.",
        "results.agreed": "Amplio acuerdo: {quotes}.",
        "results.none": "Ninguna propuesta obtuvo un amplio acuerdo.",
        "results.divided": "Estas dividen al grupo, y ambas posturas merecen ser escuchadas: {quotes}.",
        "results.tally": "({agree} a favor, {disagree} en contra, {passed} abstenciones)",
        "closing": "Se ha acabado el tiempo. Gracias a todos por participar; la transcripción y los resultados "
                   "siguen a disposición de los organizadores.",
        "stage_intro": "{stage} ({duration}). {intro}",
        "ask": "{text}",
        "silence": "Se ha hecho el silencio. ¿Alguien quiere añadir algo o responder a lo que se ha dicho?",
        "duration.seconds": "{count} segundos",
        "duration.minute": "un minuto",
        "duration.minutes": "{count} minutos",
        "llm.language": "Escribe en español.",
        "summary.heading": "Resumen hasta ahora (escrito por la IA; díganos si omite o tergiversa algo):",
        "label.point": "Punto clave",
        "label.agreement": "Acuerdo",
        "label.disagreement": "Desacuerdo",
        "label.question": "Pregunta abierta",
        "statements.proposed": "He propuesto {count} afirmaciones a partir de lo que han dicho. Edítenlas, añadan "
                               "las suyas o digan qué falta.",
    },
    "nl": {
        "greeting": "Welkom, {name}. We zijn bij \u2018{stage}\u2019 en praten over: {question} Doe mee wanneer u "
                    "wilt.",
        "safety.abuse": "Laten we respectvol blijven, zodat iedereen durft te spreken. Onenigheid is welkom, "
                        "persoonlijke aanvallen niet. Ik heb de moderator ingelicht.",
        "safety.off_topic": "Laten we teruggaan naar onze vraag: {question}",
        "time.left": "Nog {duration} voor \u2018{stage}\u2019.",
        "time.left_then": "Nog {duration} voor \u2018{stage}\u2019. Daarna gaan we verder met \u2018{next}\u2019.",
        "invite": "{name}, we hebben nog weinig van u gehoord. Wilt u iets toevoegen? U mag ook passen.",
        "balance": "Dank u, {name}, dat helpt. Laten we ook ruimte maken voor anderen: wie ziet het anders?",
        "voting.done": "Iedereen heeft over elke stelling gestemd, dus we gaan verder.",
        "results.agreed": "Brede instemming: {quotes}.",
        "results.none": "Geen enkele stelling kreeg brede instemming.",
        "results.divided": "Deze verdelen de groep, en beide standpunten verdienen gehoor: {quotes}.",
        "results.tally": "({agree} voor, {disagree} tegen, {passed} blanco)",
        "closing": "Onze tijd is om. Dank u allemaal voor het meedoen; het verslag en de resultaten blijven "
                   "beschikbaar voor de organisatoren.",
        "stage_intro": "{stage} ({duration}). {intro}",
        "ask": "{text}",
        "silence": "Het is stil geworden. Wil iemand iets toevoegen of reageren op wat er gezegd is?",
        "duration.seconds": "{count} seconden",
        "duration.minute": "één minuut",
        "duration.minutes": "{count} minuten",
        "llm.language": "Schrijf in het Nederlands.",
        "summary.heading": "Samenvatting tot nu toe (geschreven door AI; zeg het als er iets ontbreekt of niet klopt):",
        "label.point": "Kernpunt",
        "label.agreement": "Overeenstemming",
        "label.disagreement": "Meningsverschil",
        "label.question": "Open vraag",
        "statements.proposed": "Ik heb {count} stellingen voorgesteld op basis van wat u zei. Pas ze aan, voeg uw "
                               "eigen toe of zeg wat er ontbreekt.",
    },
}


def table(language: str | None) -> dict[str, str]:
    """The messages of ``language`` (its base code), or English when Moot has no table for it."""
    return MESSAGES.get(base_language(language or DEFAULT), MESSAGES[DEFAULT])


def has_language(language: str | None) -> bool:
    return base_language(language or "") in MESSAGES


def in_language(value: object, language: str | None) -> object:
    """A parameter's value for ``language``: a text given in several languages gives that one, else its first."""
    if isinstance(value, dict):
        return value.get(base_language(language or DEFAULT), next(iter(value.values()), ""))
    return value


def complete(language: str, params: dict[str, object]) -> bool:
    """Whether every parameter given in several languages has ``language`` (else the message would mix two)."""
    return all(base_language(language) in value for value in params.values() if isinstance(value, dict))


def say(language: str | None, key: str, **params: object) -> str:
    """Message ``key`` in ``language`` with its parameters filled in. ``{duration}`` comes from the parameter
    ``minutes``, said in ``language`` (capitalised at the start of a message)."""
    template = table(language)[key]
    params = {name: in_language(value, language) for name, value in params.items()}
    if "minutes" in params and "{duration}" in template:
        said = duration(language, float(params["minutes"]))  # type: ignore[arg-type]
        params = {**params, "duration": capitalised(said) if template.startswith("{duration}") else said}
    return re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1), m.group(0))), template)


def duration(language: str | None, minutes: float) -> str:
    """"30 seconds", "one minute", "5 minutes" (in ``language``)."""
    if minutes < 1:
        return say(language, "duration.seconds", count=round(minutes * 60))
    whole = round(minutes)
    return say(language, "duration.minute") if whole == 1 else say(language, "duration.minutes", count=whole)


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
