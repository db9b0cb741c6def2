"""Deterministic synthetic ChatML corpus for the TinyQwen chat model.

Every conversation is drawn from a seeded `random.Random`, so a (seed, index) pair
always gives the same text. The phrasings, word list, facts and small talk live in
skills.json beside this file (the single source of truth; the Go held-out test reads
the same file); this module holds the logic. SKILLS.md describes the skills, their
ranges and the exact answer formats that the checkers accept.

Skills (the names used in the accuracy table):
    add        a + b, a and b in 0..999
    sub        a - b, a and b in 0..999 with a >= b (the result is never negative)
    reverse    reverse a list of 2..7 words or single letters
    sort       sort 2..7 integers in 0..99 in ascending order
    count      count one letter a..z in a word of 3..10 lowercase letters
    facts      fixed facts about the model itself
    smalltalk  greetings, how-are-you, thanks, goodbye

Training also draws three harder slices of those skills (TRAIN_ONLY below); the held-out
questions never do, so they keep the distributions SKILLS.md gives.
"""

import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SKILLS = json.load(open(os.path.join(HERE, "skills.json")))

SKILL_NAMES = ["add", "sub", "reverse", "sort", "count", "facts", "smalltalk"]

# Training-only slices of the skills above, the cases the first shipped model got wrong
# most often (refgen/chatmodel/README.md has the numbers): subtractions of two 3-digit
# numbers whose difference is below 100, and copying random letter strings (which the
# tokenizer cuts into several pieces) in reverse and count. Same templates and answers.
TRAIN_ONLY = ["sub_close", "reverse_random", "count_random"]

# How often each kind is picked for a training turn. Each hard slice is about ten times
# as frequent as in its skill's own distribution; facts and small talk are learnt early.
TRAIN_WEIGHTS = {"add": 0.16, "sub": 0.16, "sub_close": 0.06, "reverse": 0.08,
                 "reverse_random": 0.08, "sort": 0.10, "count": 0.12, "count_random": 0.10,
                 "facts": 0.07, "smalltalk": 0.07}

# The mix of the first shipped model. The tokenizer was trained on conversations drawn
# with it (train_tokenizer.py), so it stays here to keep tokenizer.json reproducible.
TOKENIZER_WEIGHTS = {"add": 0.22, "sub": 0.22, "reverse": 0.10, "sort": 0.10, "count": 0.16,
                     "facts": 0.10, "smalltalk": 0.10}

DEFAULT_SYSTEM = SKILLS["default_system"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# The Qwen2-Instruct ChatML template (tokenizer_config.json carries the same string).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def render_chatml(messages, add_generation_prompt=False):
    """The chat template in plain Python (identical output to CHAT_TEMPLATE)."""
    out = []
    if messages and messages[0]["role"] != "system":
        out.append("<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n")
    for m in messages:
        out.append("<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


# ---------------------------------------------------------------------------
# Operands and lists


def number(rng, max_digits=3):
    """An integer with 1..max_digits digits, the digit count uniform first (so 7 and 512
    are equally likely kinds of operand), then uniform within that count."""
    d = rng.randint(1, max_digits)
    lo = 0 if d == 1 else 10 ** (d - 1)
    return rng.randint(lo, 10 ** d - 1)


def random_word(rng, lo=3, hi=10):
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def join_question_list(rng, items):
    """Lists in questions: ', ' (70%), ' ' (15%) or ',' (15%) between items."""
    r = rng.random()
    sep = ", " if r < 0.70 else (" " if r < 0.85 else ",")
    return sep.join(str(x) for x in items)


# Training only: how often a user turn starts with a lead-in ("And ", "Now ", "Ok. ", ...
# from skills.json), so that a follow-up like "And what is your name?" is read as the
# question it starts. The held-out questions never get one.
LEAD_IN_P = 0.15


def lead_in(rng, text):
    """text behind a random lead-in; after one that does not end a sentence (no final
    '. ' or ': ') the question's first letter is lower-cased."""
    pre = rng.choice(SKILLS["lead_ins"])
    if not pre.endswith((". ", ": ")) and text[:1].isalpha():
        text = text[0].lower() + text[1:]
    return pre + text


def vary(rng, text):
    """Light noise on user text: lower-case the first letter (15%), drop the final
    '?', '.' or '!' (15%)."""
    if rng.random() < 0.15 and text[:1].isalpha():
        text = text[0].lower() + text[1:]
    if rng.random() < 0.15 and text[-1:] in "?.!" and len(text) > 1:
        text = text[:-1]
    return text


# ---------------------------------------------------------------------------
# One question and its answer per skill. Each returns (question, answer, expected).


def make_add(rng):
    a, b = number(rng), number(rng)
    q = rng.choice(SKILLS["add"]["questions"]).format(a=a, b=b)
    ans = SKILLS["add"]["answer"].format(a=a, b=b, c=a + b)
    return q, ans, {"value": a + b, "a": a, "b": b}


def sub_question(rng, a, b):
    q = rng.choice(SKILLS["sub"]["questions"]).format(a=a, b=b)
    ans = SKILLS["sub"]["answer"].format(a=a, b=b, c=a - b)
    return q, ans, {"value": a - b, "a": a, "b": b}


def make_sub(rng):
    a, b = number(rng), number(rng)
    if a < b:
        a, b = b, a
    return sub_question(rng, a, b)


def make_sub_close(rng):
    """Training only: a 3-digit a and b = a - d with d in 0..99 (corpus.number's
    digit-count law), mostly a borrow into a 1- or 2-digit result."""
    a = rng.randint(100, 999)
    return sub_question(rng, a, a - number(rng, 2))


def make_reverse(rng, random_strings=False):
    """random_strings (training only): every item is a random string of 2..8 letters."""
    n = rng.randint(2, 7)
    r = 1.0 if random_strings else rng.random()
    if r < 0.30:
        kind = "letters"
        items = [rng.choice(LETTERS) for _ in range(n)]
    elif r < 0.90:
        kind = "words"
        items = [rng.choice(SKILLS["words"]) for _ in range(n)]
    else:
        kind = "words"
        items = [random_word(rng, 2, 8) for _ in range(n)]
    other = "words" if kind == "letters" else "letters"
    templates = [t for t in SKILLS["reverse"]["questions"] if other not in t]
    q = rng.choice(templates).format(items=join_question_list(rng, items))
    rev = items[::-1]
    ans = SKILLS["reverse"]["answer"].format(items=", ".join(rev))
    return q, ans, {"items": rev}


def make_sort(rng):
    n = rng.randint(2, 7)
    items = [rng.randint(0, 99) for _ in range(n)]
    q = rng.choice(SKILLS["sort"]["questions"]).format(items=join_question_list(rng, items))
    s = sorted(items)
    ans = SKILLS["sort"]["answer"].format(items=", ".join(str(x) for x in s))
    return q, ans, {"items": s}


def make_count(rng, random_string=False):
    """random_string (training only): the word is always a random string of 3..10 letters."""
    if random_string:
        w = random_word(rng, 3, 10)
    else:
        w = rng.choice(SKILLS["words"]) if rng.random() < 0.6 else random_word(rng, 3, 10)
    letter = rng.choice(w) if rng.random() < 0.75 else rng.choice(LETTERS)
    n = w.count(letter)
    q = rng.choice(SKILLS["count"]["questions"]).format(l=letter, w=w)
    ans = SKILLS["count"]["answer"].format(
        w=w, spelled="-".join(w), l=letter, n=n, times="time" if n == 1 else "times")
    return q, ans, {"value": n, "word": w, "letter": letter}


def make_fixed(rng, entries):
    e = rng.choice(entries)
    return rng.choice(e["questions"]), e["answer"], {"id": e["id"], "keyword": e["keyword"]}


def make(skill, rng):
    if skill == "add":
        return make_add(rng)
    if skill == "sub":
        return make_sub(rng)
    if skill == "sub_close":
        return make_sub_close(rng)
    if skill == "reverse":
        return make_reverse(rng)
    if skill == "reverse_random":
        return make_reverse(rng, random_strings=True)
    if skill == "sort":
        return make_sort(rng)
    if skill == "count":
        return make_count(rng)
    if skill == "count_random":
        return make_count(rng, random_string=True)
    if skill == "facts":
        return make_fixed(rng, SKILLS["facts"])
    if skill == "smalltalk":
        return make_fixed(rng, SKILLS["smalltalk"])
    raise ValueError(skill)


# ---------------------------------------------------------------------------
# Training conversations


def conversation(rng, weights=None, lead_in_p=LEAD_IN_P):
    """One training conversation: a system message (the default one 80% of the time,
    which the template would also insert by itself), then 1 (50%), 2 (30%) or 3 (20%)
    user/assistant exchanges, each of a kind drawn with `weights` (TRAIN_WEIGHTS), the
    question behind a lead-in with probability lead_in_p."""
    weights = weights or TRAIN_WEIGHTS
    system = DEFAULT_SYSTEM if rng.random() < 0.8 else rng.choice(SKILLS["other_systems"])
    messages = [{"role": "system", "content": system}]
    r = rng.random()
    turns = 1 if r < 0.5 else (2 if r < 0.8 else 3)
    skills = list(weights)
    w = [weights[s] for s in skills]
    for _ in range(turns):
        skill = rng.choices(skills, w)[0]
        q, a, _ = make(skill, rng)
        if lead_in_p and rng.random() < lead_in_p:
            q = lead_in(rng, q)
        messages.append({"role": "user", "content": vary(rng, q)})
        messages.append({"role": "assistant", "content": a})
    return messages


def chunk_seed(seed, index):
    """The seed of chunk `index` of a corpus with base seed `seed`."""
    return seed * 1_000_003 + index


def conversations(seed, index, n, weights=None, lead_in_p=LEAD_IN_P):
    """Chunk `index` of the corpus: n conversations (kinds drawn with `weights`,
    TRAIN_WEIGHTS by default; lead-ins with probability lead_in_p)."""
    rng = random.Random(chunk_seed(seed, index))
    return [conversation(rng, weights, lead_in_p) for _ in range(n)]


def encode_chat(tok, messages, special):
    """Token ids of the rendered conversation and a 0/1 mask that is 1 on the tokens the
    model is trained to produce: each assistant message's content and its <|im_end|>.

    The text is encoded piece by piece between special tokens, which is what a
    Hugging Face tokenizer does with added tokens, so the ids equal those of the whole
    rendered text (checked in selftest()).
    """
    start, end = special["<|im_start|>"], special["<|im_end|>"]
    nl = tok.encode("\n", add_special_tokens=False).ids
    ids, mask = [], []
    if messages and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": DEFAULT_SYSTEM}] + list(messages)
    for m in messages:
        head = tok.encode(m["role"] + "\n", add_special_tokens=False).ids
        body = tok.encode(m["content"], add_special_tokens=False).ids
        train = 1 if m["role"] == "assistant" else 0
        ids += [start] + head
        mask += [0] * (1 + len(head))
        ids += body + [end]
        mask += [train] * (len(body) + 1)
        ids += nl
        mask += [0] * len(nl)
    return ids, mask


# ---------------------------------------------------------------------------
# Held-out questions and checkers

HELDOUT_SEED = 777


def heldout(seed=HELDOUT_SEED, n_per_skill=100, lead_ins=False):
    """Fresh single-turn questions, n_per_skill for each skill, from their own seed.
    The user message gets the same light noise as in training; no system message is
    given, so the template inserts the default one. lead_ins puts every question behind
    a lead-in drawn from a stream of its own (the questions stay the same)."""
    items = []
    for k, skill in enumerate(SKILL_NAMES):
        rng = random.Random(seed * 1009 + k)
        lead_rng = random.Random(seed * 1009 + k + 500_000)
        for i in range(n_per_skill):
            q, a, expected = make(skill, rng)
            if lead_ins:
                q = lead_in(lead_rng, q)
            q = vary(rng, q)
            items.append({"skill": skill, "id": f"{skill}-{i}", "question": q,
                          "messages": [{"role": "user", "content": q}],
                          "reference": a, "expected": expected})
    return items


INT_RE = re.compile(r"-?\d+")


def check(item, answer):
    """True if `answer` (the assistant's text, special tokens removed) is correct.

    add, sub, count: the last integer in the answer (regex -?\\d+) equals the result.
    sort: the integers in the answer, in order, equal the sorted list.
    reverse: the text after the last ': ' with a final '.' removed, split on ', ',
             equals the reversed list.
    facts, smalltalk: the answer contains the entry's keyword (case-sensitive).
    """
    skill, exp = item["skill"], item["expected"]
    answer = answer.strip()
    if skill in ("add", "sub", "count"):
        nums = INT_RE.findall(answer)
        return bool(nums) and int(nums[-1]) == exp["value"]
    if skill == "sort":
        return [int(x) for x in INT_RE.findall(answer)] == exp["items"]
    if skill == "reverse":
        if ": " not in answer:
            return False
        tail = answer.rsplit(": ", 1)[1]
        if tail.endswith("."):
            tail = tail[:-1]
        return tail.split(", ") == exp["items"]
    if skill in ("facts", "smalltalk"):
        return exp["keyword"] in answer
    raise ValueError(skill)


def selftest(tok=None):
    """Checks that the corpus is deterministic, that every reference answer passes its
    checker, and (given a tokenizers.Tokenizer) that encode_chat matches whole-text
    encoding."""
    a = conversations(1, 0, 50)
    b = conversations(1, 0, 50)
    assert a == b
    for item in heldout(5, 200):
        assert check(item, item["reference"]), item
        assert not check(item, "I don't know."), item
    rng = random.Random(5)
    for kind in TRAIN_ONLY:
        base = kind.split("_")[0]
        for _ in range(200):
            q, a, expected = make(kind, rng)
            item = {"skill": base, "expected": expected}
            assert check(item, a) and not check(item, "I don't know."), (kind, q, a)
    if tok is not None:
        special = {t: tok.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")}
        for conv in conversations(2, 0, 300) + [h["messages"] for h in heldout(6, 10)]:
            ids, mask = encode_chat(tok, conv, special)
            whole = tok.encode(render_chatml(conv), add_special_tokens=False).ids
            assert ids == whole, (conv, ids, whole)
            assert len(mask) == len(ids)
    return True


if __name__ == "__main__":
    import sys

    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for _ in range(8):
        print(render_chatml(conversation(rng)))
    print("selftest:", selftest())
