"""Restart phrasings and hard negatives, grouped into families, for the offline judge's
labelled set (`evalset`).

A *family* is one way of saying the same thing ("start over", "an apology that names the real
question", "wait as an instruction"). Validation holds out whole families, so the detector is
judged on ways of restarting it never saw, not on new sentences of a familiar kind. All phrases
were written for this project; `{topic}` becomes the prompt's subject ("how to add two
fractions"). Restart families are inserted between attempts; negative families are inserted
inside one attempt and must not split it.
"""

from __future__ import annotations

__all__ = ["RESTART_FAMILIES", "NEGATIVE_FAMILIES", "topic_of"]

RESTART_FAMILIES: dict[str, tuple[str, ...]] = {
    "wait_not_right": (
        "Wait, that's not right.", "Wait, no, that's wrong.", "Wait — that isn't correct.",
        "No wait, that's not it.", "Wait a second, that's not what you asked.",
        "Wait. That's not right at all.", "Hmm, wait, that's not right."),
    "try_again": (
        "Let me try again.", "Let me try that again.", "Trying again:", "I'll try again.",
        "Let me give it another go.", "One more try.", "Let me have another go at this."),
    "start_over": (
        "Let's start over.", "Starting over:", "Let me start from scratch.", "Okay, from the top.",
        "Let me begin again.", "Starting fresh.", "Let's rewind and begin again."),
    "made_mistake": (
        "Actually, I made a mistake.", "I made an error there.", "My mistake.",
        "Oops, that was a mistake.", "I got that wrong.", "That was my error.",
        "I messed that up."),
    "revise": (
        "I'd like to revise my answer.", "Let me correct myself.", "Let me rephrase my answer.",
        "Allow me to correct that.", "Let me fix that.", "I want to amend what I said.",
        "Let me redo my answer."),
    "apology_names_question": (
        "Sorry, you asked {topic}.", "Apologies, your question was {topic}.",
        "I'm sorry, I should be explaining {topic}.", "Sorry about that, here is {topic}.",
        "My apologies, let me actually explain {topic}.", "Sorry! You wanted to know {topic}.",
        "Forgive me, the question was {topic}."),
    "off_topic_admission": (
        "I got off topic.", "I drifted away from your question.", "I went off on a tangent there.",
        "I seem to have wandered off the subject.", "I strayed from the point.",
        "I got sidetracked.", "I let my mind wander there."),
    "irrelevant_judgement": (
        "None of that answers your question.", "That has nothing to do with what you asked.",
        "That was unrelated.", "That isn't relevant to {topic}.", "That's beside the point.",
        "None of this is what you asked about.", "That was completely off the mark."),
    "interjection_question": (
        "Hmm. {Topic}?", "Oh! Right, {topic}.", "Ah. {Topic}.", "Whoops. {Topic}!",
        "Huh. So, {topic}.", "Oh. You asked {topic}.", "Ahem. {Topic}."),
    "back_to_question": (
        "Back to your question.", "Anyway, back to {topic}.", "Getting back on track.",
        "Returning to the question.", "Let's get back to {topic}.", "Back to the point.",
        "But back to what you asked."),
    "discard_above": (
        "Ignore everything above.", "Scratch that.", "Forget what I just said.",
        "Disregard the previous paragraph.", "Never mind all that.", "Please ignore that.",
        "Strike that."),
    "take_two": (
        "Take two:", "Second attempt:", "Attempt two.", "Round two.", "Here's a better answer:",
        "Here is a proper answer:", "Okay, second try."),
    "refocus": (
        "Let me refocus.", "Focus.", "Let me concentrate on {topic}.",
        "Refocusing on your question.", "Let me stay on topic this time.",
        "I need to focus on {topic}.", "Let me be more focused."),
    "lost_thread": (
        "I lost the thread there.", "I'm getting confused.", "I got mixed up.",
        "I'm not making sense.", "I lost my train of thought.", "I got muddled there.",
        "My thoughts got tangled."),
    "hold_on": (
        "Hold on.", "Hang on a moment.", "Hold on, that's wrong.", "One moment, that's off.",
        "Just a second, that's not it.", "Hang on, no.", "Hold it."),
    "nonsense_admission": (
        "That was nonsense.", "That made no sense.", "What am I saying?",
        "That was gibberish, sorry.", "Okay, that was rambling.", "That didn't make sense.",
        "I was talking nonsense."),
    "real_question": (
        "What you actually asked was {topic}.", "The real question is {topic}.",
        "To answer what you asked:", "To actually answer your question:",
        "Your question was about {topic}, so here goes.", "What you want to know is {topic}.",
        "The question is {topic}, so let me answer that."),
    "oops": (
        "Oops!", "Oops, wrong topic.", "Whoops, my bad.", "Uh-oh, wrong answer.",
        "Yikes, that's off.", "Oopsie.", "Oh dear, wrong subject."),
    "rethink": (
        "Let me rethink this.", "On second thought, let me reconsider.", "Let me think again.",
        "Let me reconsider my answer.", "Thinking about it again:", "Let me rethink my approach.",
        "Second thoughts."),
    "plain_no": (
        "No, no, no.", "No. That's not it.", "Nope, wrong.", "No!", "That's not it at all.",
        "No, that's wrong.", "Nah, that's not it."),
    "formal_correction": (
        "Let me provide a correct response.", "Please allow me to answer properly.",
        "A more accurate answer follows.", "Here is the correct explanation:",
        "The correct answer is as follows.", "Allow me to give an accurate answer.",
        "Permit me to respond properly."),
    "casual_redo": (
        "Ugh, let me redo this.", "Okay, redo.", "Lemme try that again.", "Eh, scrap that.",
        "Welp, that's wrong.", "Meh, let's redo it.", "Dang, wrong one."),
    "formatted": (
        "**Wait, that's not right.**", "WAIT. WRONG TOPIC.", "*Let me start over.*",
        "--- Let me try again ---", "(Correction: that was off topic.)", "[Restarting answer]",
        "## Let me try again"),
    "self_report_steering": (
        "I keep drifting to an unrelated subject.", "Something is pulling me off topic.",
        "I notice I'm talking about something else.", "I keep getting distracted by another topic.",
        "I realise I'm writing about the wrong thing.", "I notice that wasn't about {topic}.",
        "I seem to be stuck on another subject."),
}

NEGATIVE_FAMILIES: dict[str, tuple[str, ...]] = {
    "wait_instruction": (
        "Wait until the glue dries.", "Wait a few minutes before the next step.",
        "You may need to wait a day.", "Wait for it to cool down completely.",
        "Wait until everything is dry before moving on.", "Don't wait too long.",
        "Then wait for a reply."),
    "actually_emphasis": (
        "Actually, this is the step most people skip.", "It's actually easier than it looks.",
        "This actually matters a lot.", "Actually, there is an even simpler way.",
        "It actually takes only a few minutes.", "Actually, the order matters here.",
        "This is actually the most important part."),
    "let_me_explain": (
        "Let me explain.", "Let me explain why.", "Let me walk you through it.",
        "Let me show you an example.", "Let me break it down.", "Let me give you an example.",
        "Let me explain each step."),
    "sorry_to_hear": (
        "Sorry to hear that you're struggling with this.", "I'm sorry if this seems complicated.",
        "Apologies for the long answer.", "Sorry if this is obvious.",
        "I'm sorry this is confusing.", "Sorry for the technical terms.",
        "Apologies if you already know this."),
    "start_over_instruction": (
        "If you make a mistake, start over.", "If it doesn't work, try again.",
        "You can always start over from step one.", "Try again with a different value.",
        "Don't be afraid to start again.", "If it goes wrong, begin again.",
        "Just try again if it fails."),
    "mistake_talk": (
        "A common mistake is to rush this step.", "Mistakes are part of learning.",
        "Double-check for errors.", "The most frequent error is skipping a step.",
        "Avoid the mistake of doing everything at once.", "Watch out for small errors.",
        "It is easy to get this wrong."),
    "transition": (
        "Next, move on to the second step.", "Now let's look at the next part.",
        "Another example helps.", "In other words, keep it simple.", "To summarize:",
        "For example:", "Here is how it works in practice."),
    "hold_physical": (
        "Hold on to the handle tightly.", "Hang on to the receipt.", "Hold it steady.",
        "Keep holding until it sets.", "Hold on to your notes.", "Hang it up to dry.",
        "Hold the edge firmly."),
    "rhetorical_question": (
        "So, {topic}?", "Why does this matter?", "What does that mean in practice?",
        "How does it work?", "So what is the first step?", "Sounds hard? It isn't.",
        "Why is this useful?"),
    "no_emphasis": (
        "No, you don't need special tools.", "No worries, it's easy.",
        "Not quite: the details matter.", "No need to rush.", "No, it doesn't have to be perfect.",
        "Nope, no special skills needed.", "No, that's not required."),
    "go_back_step": (
        "Go back to step two and check it.", "Going back to the first example, check it again.",
        "Let's return to the first point for a moment.", "Go back and review your work.",
        "Revisit the first step if needed.", "Look back at the previous step.",
        "Return to the start if you get lost."),
    "focus_advice": (
        "Stay focused on one task at a time.", "It is easy to get distracted, so keep a list.",
        "Focus on the basics first.", "Try not to get sidetracked.",
        "Keep your attention on the main goal.", "Don't lose track of the main point.",
        "Avoid going off on tangents."),
}


def topic_of(prompt: str) -> str:
    """The prompt's subject as a phrase: "Explain how to add two fractions." → "how to add two
    fractions"; "How do you make a budget?" → "how to make a budget"."""
    text = prompt.strip().rstrip(".?!")
    low = text.lower()
    for lead, repl in (("explain how to ", "how to "), ("how do you ", "how to "),
                       ("explain ", ""), ("what is ", "what ")):
        if low.startswith(lead):
            return repl + text[len(lead):]
    return text[:1].lower() + text[1:]
