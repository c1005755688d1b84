const PERSON = `(?:a |an |the |some |to |with )*(?:real |live |actual )?(?:human(?!-)|person|someone|somebody|agent|representative|rep|operator|staff(?: member)?|support(?: team| staff| agent)?|team member)`;

/**
 * Phrasings of "I want a person, not the bot". Each needs both a contact verb and a person, in
 * that order and close together, so "human-readable export", "give an agent access" or "add a
 * representative" do not count, and asking *how* to contact support (which the help center
 * answers) does not either.
 */
const ASKS_FOR_HUMAN: RegExp[] = [
  new RegExp(String.raw`\b(?:talk|speak|chat|get in touch)(?: to| with)? ${PERSON}\b`),
  new RegExp(
    String.raw`\b(?:connect|transfer|put|escalate|pass|hand)(?: me| this| it)?(?: through| over| on)?(?: to| with)? ${PERSON}\b`,
  ),
  /\b(?:real|live|actual) (?:human|person|agent)\b/,
  /^(?:human|agent|operator|representative|a human|a person)(?: please| pls)?[.!?]*$/,
  /\b(?:want|need|get) (?:a |an )?(?:human|person)(?: to help| please)?\s*[.!?]*$/,
];

/**
 * True when the asker asks for a person rather than an answer ("can I talk to a human?",
 * "connect me with an agent", "I need to speak with someone", "real person please").
 * "How do I contact support?" is a help-center question and returns false.
 */
export function wantsHuman(question: string): boolean {
  const q = question.toLowerCase().replace(/\s+/g, ' ').trim();
  if (/\bhow (?:do|can|could|should) (?:i|we|you) (?:contact|reach|email|call)\b/.test(q)) return false;
  return ASKS_FOR_HUMAN.some((re) => re.test(q));
}
