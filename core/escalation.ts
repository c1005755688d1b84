/**
 * True when the asker asks for a person rather than an answer ("can I talk to a human?",
 * "connect me with an agent", "I want a real person"). Asking how to contact support is a
 * question the help center can answer, so it does not count.
 */
export function wantsHuman(question: string): boolean {
  const q = question.toLowerCase();
  const person =
    /\b(human|real person|live (agent|person|chat)|an? agent|someone (real|from (your|the) (team|support))|representative|operator)\b/;
  const verb = /\b(talk|speak|chat|connect|transfer|escalate|get|want|need|give)\b/;
  return person.test(q) && verb.test(q) && !/\bhow (do|can) i (contact|reach)\b/.test(q);
}
