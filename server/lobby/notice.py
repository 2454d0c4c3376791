"""The plain-language notice people read and consent to before they wait: what is recorded, the AI assistant, who
sees what, and how long it is kept. Its version is stored with each consent; change the version when the text
changes."""

from __future__ import annotations

from server.core.events import base_language

NOTICE_VERSION = "2026-12-02b"  # b: machine translation


_NOTICE: dict[str, dict[str, str]] = {
    "en": {
        "kept_days": "Transcripts are deleted {days} days after the deliberation closes.",
        "kept": "Transcripts are kept until the organisers delete them.",
        "transcribed": "What you say in your group is transcribed automatically, and the transcript is stored.",
        "ai": "An AI assistant takes part: it keeps time, invites quieter voices, summarises and drafts statements "
              "for the group to vote on. Its messages are always labelled, and people moderating can correct or "
              "stop it.",
        "who": "Your group sees your name, video, voice and captions. The organisers and moderators of this "
               "deliberation can read transcripts, statements and votes; reports and exports use an alias instead "
               "of your name.",
        "translated": "What you say may be translated by machine for group members who read another language; "
                      "translations are labelled as such and stored beside your words.",
        "observe": "A moderator may watch and listen to your group to help it; your room always shows when one is "
                   "observing.",
        "delete": "You can ask the organisers to delete what you said at any time.",
    },
    "fr": {
        "kept_days": "Les transcriptions sont supprimées {days} jours après la clôture de la délibération.",
        "kept": "Les transcriptions sont conservées jusqu'à ce que les organisateurs les suppriment.",
        "transcribed": "Ce que vous dites dans votre groupe est transcrit automatiquement, et la transcription est "
                       "conservée.",
        "ai": "Un assistant IA participe\u00a0: il gère le temps, invite les plus discrets à parler, résume et "
              "rédige des propositions que le groupe vote. Ses messages sont toujours signalés, et les modérateurs "
              "peuvent le corriger ou l'arrêter.",
        "who": "Votre groupe voit votre nom, votre vidéo, votre voix et vos sous-titres. Les organisateurs et les "
               "modérateurs de cette délibération peuvent lire les transcriptions, les propositions et les votes\u00a0;"
               " les rapports et les exports utilisent un pseudonyme à la place de votre nom.",
        "translated": "Ce que vous dites peut être traduit automatiquement pour les membres du groupe qui lisent une "
                      "autre langue\u00a0; les traductions sont signalées comme telles et conservées à côté de vos "
                      "propos.",
        "observe": "Un modérateur peut regarder et écouter votre groupe pour l'aider\u00a0; votre salle indique "
                   "toujours quand c'est le cas.",
        "delete": "Vous pouvez demander à tout moment aux organisateurs de supprimer ce que vous avez dit.",
    },
    "de": {
        "kept_days": "Transkripte werden {days} Tage nach dem Ende der Beratung gelöscht.",
        "kept": "Transkripte werden aufbewahrt, bis die Veranstalter sie löschen.",
        "transcribed": "Was Sie in Ihrer Gruppe sagen, wird automatisch transkribiert, und das Transkript wird "
                       "gespeichert.",
        "ai": "Ein KI-Assistent nimmt teil: Er achtet auf die Zeit, lädt Stillere zum Sprechen ein, fasst zusammen "
              "und entwirft Aussagen, über die die Gruppe abstimmt. Seine Nachrichten sind immer gekennzeichnet, "
              "und die Moderation kann ihn korrigieren oder anhalten.",
        "who": "Ihre Gruppe sieht Ihren Namen, Ihr Video, Ihre Stimme und Ihre Untertitel. Veranstalter und "
               "Moderation dieser Beratung können Transkripte, Aussagen und Abstimmungen lesen; Berichte und Exporte "
               "verwenden statt Ihres Namens ein Pseudonym.",
        "translated": "Was Sie sagen, kann für Gruppenmitglieder, die eine andere Sprache lesen, maschinell übersetzt "
                      "werden; Übersetzungen sind als solche gekennzeichnet und werden neben Ihren Worten gespeichert.",
        "observe": "Eine Moderatorin oder ein Moderator kann Ihre Gruppe sehen und hören, um zu helfen; Ihr Raum "
                   "zeigt immer an, wenn das der Fall ist.",
        "delete": "Sie können die Veranstalter jederzeit bitten, Ihre Worte zu löschen.",
    },
    "es": {
        "kept_days": "Las transcripciones se eliminan {days} días después del cierre de la deliberación.",
        "kept": "Las transcripciones se conservan hasta que los organizadores las eliminen.",
        "transcribed": "Lo que dice en su grupo se transcribe automáticamente, y la transcripción se guarda.",
        "ai": "Un asistente de IA participa: controla el tiempo, invita a hablar a quienes intervienen menos, resume "
              "y redacta propuestas que el grupo vota. Sus mensajes siempre se señalan, y los moderadores pueden "
              "corregirlo o detenerlo.",
        "who": "Su grupo ve su nombre, su vídeo, su voz y sus subtítulos. Los organizadores y moderadores de esta "
               "deliberación pueden leer las transcripciones, las propuestas y los votos; los informes y las "
               "exportaciones usan un seudónimo en lugar de su nombre.",
        "translated": "Lo que dice puede traducirse automáticamente para los miembros del grupo que leen otro "
                      "idioma; las traducciones se señalan como tales y se guardan junto a sus palabras.",
        "observe": "Un moderador puede ver y escuchar a su grupo para ayudar; su sala siempre indica cuándo lo hace.",
        "delete": "Puede pedir a los organizadores que eliminen lo que ha dicho en cualquier momento.",
    },
    "nl": {
        "kept_days": "Verslagen worden {days} dagen na het sluiten van het beraad verwijderd.",
        "kept": "Verslagen worden bewaard tot de organisatoren ze verwijderen.",
        "transcribed": "Wat u in uw groep zegt, wordt automatisch uitgeschreven en het verslag wordt bewaard.",
        "ai": "Een AI-assistent neemt deel: hij bewaakt de tijd, nodigt stillere deelnemers uit, vat samen en stelt "
              "stellingen op waarover de groep stemt. Zijn berichten zijn altijd gemarkeerd, en moderatoren kunnen "
              "hem corrigeren of stoppen.",
        "who": "Uw groep ziet uw naam, video, stem en ondertitels. De organisatoren en moderatoren van dit beraad "
               "kunnen verslagen, stellingen en stemmen lezen; rapporten en exports gebruiken een schuilnaam in "
               "plaats van uw naam.",
        "translated": "Wat u zegt kan automatisch worden vertaald voor groepsleden die een andere taal lezen; "
                      "vertalingen zijn als zodanig gemarkeerd en worden naast uw woorden bewaard.",
        "observe": "Een moderator kan uw groep zien en horen om te helpen; uw ruimte laat altijd zien wanneer dat zo "
                   "is.",
        "delete": "U kunt de organisatoren op elk moment vragen te verwijderen wat u zei.",
    },
}


def notice_text(retention_days: int | None, language: str | None = None) -> list[str]:
    """The notice, one paragraph per item, in ``language`` (English when Moot has no notice in it). The versions
    in each language say the same; the consent's version covers them all."""
    words = _NOTICE.get(base_language(language or "en"), _NOTICE["en"])
    kept = words["kept_days"].format(days=retention_days) if retention_days else words["kept"]
    return [words["transcribed"], words["ai"], words["who"], words["translated"], words["observe"],
            f"{kept} {words['delete']}"]
