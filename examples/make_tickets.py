"""Write the SYNTHETIC customer-service example sets: tickets.csv, tickets_b.csv, inbox.csv and answers.csv.

No real customer wrote any of these messages: this script composes them from hand-written sentence
frames, so no accuracy measured on these files says anything about real-world traffic. What it tries
to imitate is how varied real messages are: each intent has many paraphrase structures (questions,
statements, complaints, requests), each with synonyms to pick from, in different orders, with or
without greetings, thanks, a sentence of context that has nothing to do with the intent, an order
number, and typos; a message's exact wording rarely repeats, and most test messages are worded in a
way their training split never saw (`python examples/make_tickets.py` prints how often).

`tickets.csv` (set A) is written like a web form or an e-mail: complete sentences, mostly polite.
`tickets_b.csv` (set B) holds the same eight intents written like a chat or a text message, from
its own frames and words (no frame is shared with set A), so a model can also be trained on one set
and scored on the other. `inbox.csv` is set A with only the first 10 messages of each intent labelled
(the rest blank): an inbox where a team has labelled a few messages. Rerun to regenerate:
`python examples/make_tickets.py`.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
PER_INTENT = 50
INBOX_LABELLED = 10  # labelled messages per intent in inbox.csv

# `{a|b|c}` picks one (nested allowed); `<item>`, `<days>`, `<order>`, `<when>` are filled per message.
# Set A: web form / e-mail register.
FRAMES_A = {
    "track_order": [
        "Where is my {parcel|package|order}? It {still has not|has not yet} arrived.",
        "Could you {tell me|let me know|check} where my order <order> is at the moment?",
        "I ordered a <item> <days> days ago and {it is still not here|nothing has arrived|I have not received it}.",
        "{Has|Have you} {shipped|dispatched|sent out} my order <order> {yet|already}?",
        "The tracking {page|link} {has not changed|shows no movement|still says 'processing'} for <days> days.",
        "{Is there|Do you have} a tracking number for {my purchase|the <item> I bought|order <order>}?",
        "My <item> was {due|supposed to arrive|expected} <when> but {it never came|there is no sign of it}.",
        "{When|On which day} {will|can I expect} my <item> {be delivered|to arrive|to turn up}?",
        "I am {getting worried|a bit concerned} because my {delivery|parcel} seems to be {lost|stuck|missing}.",
        "The courier {app|website} says delivered, but {nothing was left at my door|I have no parcel}.",
        "{Please|Can you} {chase|follow up on} my delivery, it is <days> days late.",
        "I {would like|want} to {know|find out} the {status|progress} of my {order|shipment}.",
        "{Still|I am still} waiting for order <order>; {can you see|do you know} where it is?",
    ],
    "cancel_order": [
        "Please cancel my order <order>{.|, I no longer need it.| as soon as possible.}",
        "I {want|would like} to cancel the <item> I {ordered|bought} <when>.",
        "{Can|Is it possible to} {still |}cancel {my purchase|an order that has not shipped}?",
        "I {changed my mind|found it cheaper elsewhere}, {please stop|could you stop} the order.",
        "How do I cancel an order I {placed|made} <days> days ago?",
        "I ordered the wrong <item> by mistake{, please cancel it| and need to cancel the order}.",
        "{Is it|Am I} too late to cancel {my order|order <order>}?",
        "I would like to withdraw {my order|the order for a <item>} before it {ships|is dispatched}.",
        "Please do not {send|ship|dispatch} the <item>{, I want to cancel|; cancel it instead}.",
        "I {accidentally|mistakenly} placed the same order twice, please cancel {one of them|the second one}.",
        "{Kindly|Please} {void|annul|cancel} the purchase {I made <when>|of the <item>}.",
        "There is no {cancel button|option to cancel} on my order page{.|, how do I cancel?}",
        "I no longer {want|need} order <order>, {can you call it off|please cancel it}?",
    ],
    "return_item": [
        "How do I {return|send back} a <item>?",
        "I would like to send back the <item> I {received|got} <when>.",
        "The <item> {does not fit|is too small|is too big}, can I return it?",
        "What is your {return|returns} policy?",
        "I need a {return|returns} label for {order <order>|the <item>}.",
        "The <item> arrived {damaged|broken|scratched} and I {want|would like} to return it.",
        "Can I exchange the <item> for {a different size|another colour|a different model}?",
        "How many days do I have to {return|send back} an item?",
        "I {want|wish} to return {part of order <order>|one item from my order}.",
        "{Where|At which place} do I drop off a {return|returned parcel}?",
        "The <item> {is not as described|looks nothing like the photos|is faulty}, I want to {send it back|return it}.",
        "{Do I have to|Must I} pay for the postage when I return {something|the <item>}?",
        "{I am not happy|I am unhappy|I am disappointed} with the <item> and {would like to return it|want to send it back}.",
    ],
    "refund_status": [
        "When will I {get|receive} my refund?",
        "I returned the <item> <days> days ago and {have not been refunded|still have no refund}.",
        "Has {my refund|the refund} for order <order> been {processed|issued|approved}?",
        "How long does a refund {take|usually take} to {arrive|reach my account}?",
        "I {still have not|have not} received my money back{.| for the return.}",
        "The refund for my <item> is {missing from|not showing on} my {account|bank statement}.",
        "Can you {check|look into} the status of my refund?",
        "You confirmed {my return|that you got the parcel back} but the refund never came.",
        "Will the refund go {back |}to my original {card|payment method}?",
        "My refund was only {partial|a part of what I paid}, why?",
        "{It has been|It is now} <days> days since you {received|got} my return and {I have no refund|no money came back}.",
        "{Please|Could you} {send|issue} the refund {you promised|for order <order>}.",
        "I was told I would be {refunded|reimbursed} <when>, but {the money is not there|nothing has arrived}.",
    ],
    "change_address": [
        "I need to {change|update|correct} my delivery address.",
        "Can I update the shipping address on {order <order>|my order}?",
        "I {moved|have moved house}, please send the <item> to my new address.",
        "The address on my order is {wrong|incorrect|out of date}.",
        "How do I {edit|change} my address before the order {ships|is dispatched}?",
        "Please deliver {order <order>|the <item>} to my {office|workplace} instead.",
        "I typed the wrong {street name|house number|postcode} in my address.",
        "Can the courier {bring|deliver} the <item> to a different address?",
        "{Update|Please update} my {postcode|flat number} on the order{.| please.}",
        "I want to change where my {parcel|order} is delivered.",
        "I will be away <when>, could you {send|redirect} my order to {my parents' house|a neighbour} instead?",
        "{By mistake|Accidentally} I {used|chose} my old address at checkout{.|, can you fix it?}",
        "Is it possible to {redirect|reroute} {a parcel|order <order>} that has {already shipped|not arrived yet}?",
    ],
    "payment_issue": [
        "My {card|credit card|debit card} was declined at checkout.",
        "I was charged twice for order <order>.",
        "The payment failed but {money left my account|my bank shows the charge}.",
        "Which payment methods do you accept?",
        "Why was my card charged <days> times?",
        "I cannot pay with my {credit card|Visa card|Mastercard}.",
        "There is an {unknown|unexpected} charge from your shop on my {statement|bank account}.",
        "The checkout page {gives|shows} a payment error{.| every time I try.}",
        "Can I pay for the <item> in {instalments|monthly payments}?",
        "My {voucher|discount|gift card} code was not applied to the payment.",
        "{Do you take|Can I use} PayPal or {Apple Pay|bank transfer}?",
        "I was billed {more than|a different amount from} the price shown {at checkout|on the website}.",
        "{The bank|My bank} {blocked|refused} the transaction{, can you help?|; what should I do?}",
    ],
    "account_login": [
        "I cannot log in to my account.",
        "I {forgot|have forgotten} my password.",
        "How do I reset my password?",
        "My account is locked after too many {attempts|failed logins}.",
        "I never received the password reset {email|link}.",
        "The login page says my email is not registered.",
        "How do I change the email address {of|on} my account?",
        "I {want|would like} to delete my account{.| and all my data.}",
        "The two-factor code does not arrive when I {sign in|log in}.",
        "I cannot sign in with my new password.",
        "Every time I {try to log in|enter my details} the page {just reloads|shows an error}.",
        "{Someone may have|I think someone has} {accessed|got into} my account, {please help|what do I do}?",
        "{I do not remember|I cannot remember} which email I {registered|signed up} with.",
    ],
    "shipping_cost": [
        "How much does {shipping|delivery|postage} cost?",
        "Is delivery free for orders over a certain amount?",
        "Do you ship {abroad|to other countries} and what does it cost?",
        "How much is {express|next day} delivery for a <item>?",
        "Why is the {delivery fee|shipping charge} so high?",
        "What are your {shipping|delivery} options?",
        "How long does standard delivery take?",
        "Do you offer {next day|weekend|same day} delivery?",
        "Is there a {shipping|postage} charge on returns?",
        "Can I collect the <item> in store to avoid {delivery fees|paying for shipping}?",
        "{What would it cost|How much would it be} to {send|ship} a <item> to {Ireland|Spain|Canada}?",
        "{Is there|Do you have} a {minimum order|threshold} for free {shipping|delivery}?",
        "{I am thinking of|I am about to} order a <item>; {how much is|what is} the delivery charge?",
    ],
}

# Set B: chat / text-message register, its own frames and words.
FRAMES_B = {
    "track_order": [
        "hey so my stuff {still hasnt|hasnt} shown up, any idea whats going on",
        "its been <days> days and no sign of the <item>, is it lost??",
        "ordered ages ago, nothing {arrived|here yet}, can u check <order>",
        "{courier|delivery guy|postman} never came, my box is nowhere",
        "what's the {status|update} on my {shipment|order}, kinda waiting here",
        "the <item> was supposed to be here {yesterday|monday|last week}, still nothing",
        "um where's my {package|parcel} at",
        "no delivery yet, is it stuck {somewhere|in a depot}?",
        "{tracking|the tracker} {hasnt moved|is frozen} since {tuesday|the weekend}, wheres my <item>",
        "app says out for delivery {since forever|for 3 days} lol where is it",
        "{any news|any update} on my order? {been waiting|waited} <days> days",
        "did u even send my <item>? nothing came",
        "{it says|site says} delivered but i got nothing??",
    ],
    "cancel_order": [
        "actually nvm, dont want the <item> anymore, scrap it",
        "pls stop <order> before it goes out",
        "clicked buy by accident lol, undo that",
        "can u {kill|drop} my order, found it cheaper {elsewhere|on amazon}",
        "dont ship it, i dont need it anymore",
        "i'd like to call off the {purchase|order} i made <days> days back",
        "scrap the whole thing, i'm not buying after all",
        "oops wrong <item>, please dont process it",
        "ordered 2 by mistake, {get rid of|remove} one pls",
        "{changed my mind|on second thoughts}, {dont want|no longer want} it, {stop|halt} the order",
        "how do i {undo|take back} an order i just made",
        "{need to|wanna} {back out of|pull out of} my order <order>",
        "ordered the <item> {drunk|half asleep} last night lol, can i {undo|reverse} it",
    ],
    "return_item": [
        "the <item> is {way|waaay} too small, sending it back ok?",
        "got the <item> and honestly hate it, how do i give it back",
        "box came all smashed, want to send this back",
        "what's the deal with sending stuff back to you guys",
        "need to ship the <item> back, what do i do",
        "the colour is totally off, can i swap it",
        "want to give back the <item>, it's {broken|busted|not working}",
        "how do i get a label to post this back",
        "{bought|got} the wrong size, {can i|how do i} swap for a bigger one",
        "<item> stopped working after {2 days|a week}, can i send it back",
        "{do u|do you guys} take stuff back if i {opened|wore} it once",
        "{where|how} do i {post|mail} the <item> back to u",
        "how long have i got to {send|bring} something back",
    ],
    "refund_status": [
        "still waiting on my money from that return",
        "sent the <item> back <days> days ago, where's my cash",
        "u guys owe me money for <order>",
        "is my money coming back or what",
        "money from the return hasnt hit my {bank|account} yet",
        "how long till i see the cash back on my card",
        "return was received but no money, whats up",
        "i only got {half|part} my money back??",
        "{where|wheres} my {reimbursement|money back} {at|tho}",
        "u {said|promised} id be paid back by {friday|now}, {nothing|zero} so far",
        "been <days> days since u got the <item> back, {no money|still no money}",
        "do i get the money back on {paypal|my card} or as store credit",
        "{did|has} the refund {for|on} <order> {gone through|been sent}?",
    ],
    "change_address": [
        "just moved house, send the <item> to the new place pls",
        "oops put my old flat on the order, can u fix",
        "can the parcel go to my work instead of home",
        "wrong house number on <order>, help",
        "need it sent somewhere else, i won't be home",
        "typo in my street on the order lol",
        "i'm staying at my mum's, ship it there instead?",
        "swap the destination for my parcel please",
        "{missed|forgot} the flat number when i ordered, {can u add it|pls add it}",
        "{can u|can you} {change|switch} the delivery {place|address} on the <item>",
        "{moving|moved} {next week|on saturday}, {deliver|send} it to the new {house|address} instead",
        "can i pick a different {drop-off|delivery} address {after|now that} i ordered",
        "postcode on my order is {wrong|off by one digit}, {sort it|fix it} pls",
    ],
    "payment_issue": [
        "card keeps getting rejected, {wtf|why}",
        "got billed two times for the same <item>",
        "checkout just errors when i hit pay",
        "money's gone from my bank but the order failed??",
        "can i use paypal or only cards",
        "theres a weird charge from you on my bank",
        "promo code didnt knock anything off the price",
        "do u do pay later / split payments",
        "{tried|tried like} 3 cards and {none work|nothing goes through}",
        "why did u take <days> {quid|euro} more than the price",
        "{pay button|payment page} just spins forever",
        "{charged|took money} but no order {confirmation|email}??",
        "does {klarna|apple pay|google pay} work on your site",
    ],
    "account_login": [
        "cant get into my account at all",
        "lost my {pasword|password}, help",
        "reset link never shows up in my inbox",
        "locked out after typing the wrong pw a few times",
        "it says no user with my email??",
        "sms code for signing in never comes",
        "want to close my profile for good",
        "new password doesnt work when i sign in",
        "{keeps|site keeps} {saying|telling me} {wrong details|invalid login} but im sure theyre right",
        "{how do i|can i} {switch|change} the email {i log in with|on my profile}",
        "{app|website} {logs me out|kicks me out} {every 5 mins|all the time}",
        "{someone|somebody} {hacked|got into} my account i think",
        "{forgot|dont remember} my username {lol|tbh}",
    ],
    "shipping_cost": [
        "how much to get it sent to me",
        "is postage free if i spend more",
        "do u send to {canada|the us|australia} and how much",
        "whats the price for fast delivery on a <item>",
        "postage is crazy expensive, why",
        "can i pick up the <item> at a shop instead of paying for delivery",
        "how many days does normal post take",
        "any chance of getting it tomorrow, how much extra",
        "{do u|do you} {charge|make me pay} for {delivery|postage} on small orders",
        "{whats|what is} the cheapest way to {get|have} it {delivered|shipped}",
        "free {delivery|shipping} over what amount?",
        "{how much|hw much} is {express|the fast option} {vs|compared to} normal",
        "{do u|do you} {deliver|ship} on {saturdays|weekends} and is it extra",
    ],
}

ITEMS = [
    "jacket", "phone case", "pair of shoes", "lamp", "backpack", "kettle", "blender", "dress", "keyboard", "watch",
    "coffee machine", "hoodie", "desk chair", "set of towels", "pair of headphones", "printer", "rug", "tablet",
]  # fmt: skip
WHEN = ["last week", "yesterday", "on Monday", "two weeks ago", "this morning", "at the weekend", "last month"]

# Context a customer adds that says nothing about the intent (shared by every intent of a set).
CONTEXT_A = [
    "I have been a customer for years.",
    "This is the second time I am writing about this.",
    "My order number is <order>.",
    "It was a present for my daughter.",
    "I am travelling next week.",
    "I bought a <item> from you <when>.",
    "I tried calling but nobody answered.",
    "Your website was not much help.",
    "I am writing from my phone, sorry for any mistakes.",
    "This is urgent.",
]
CONTEXT_B = [
    "been a customer for ages btw",
    "2nd time asking!!",
    "order is <order>",
    "its a gift for my bf",
    "im away next week",
    "chat bot was useless",
    "nobody answers the phone",
    "sorry on my phone",
    "need this sorted today",
    "ur site is so confusing",
]
OPENERS_A = ["", "", "", "Hello, ", "Hi, ", "Good morning. ", "Hello there. ", "Dear customer service, ", "Hi team, "]
CLOSERS_A = ["", "", "", " Thank you.", " Thanks in advance.", " Kind regards.", " Many thanks.", " Best wishes."]
OPENERS_B = ["", "", "", "yo ", "hiya ", "ok so ", "hey, ", "hi ", "hello?? "]
CLOSERS_B = ["", "", "", " thx", " cheers", " asap pls", " :(", " ty", " ??"]

ANSWERS = {
    "track_order": "You can follow your parcel from Orders > Track; if it has not moved for 3 working days, reply "
    "with your order number and we will chase the courier.",
    "cancel_order": "Orders can be cancelled from Orders > Cancel until they ship; once shipped, return it instead "
    "and we refund you in full.",
    "return_item": "You have 30 days to return an item: print a free label from Orders > Return and drop the parcel "
    "at any post office.",
    "refund_status": "Refunds go back to the original payment method within 5 working days of your return arriving "
    "with us.",
    "change_address": "You can change the delivery address from Orders > Edit until the order ships.",
    "payment_issue": "We accept cards, PayPal and instalments; a double charge is a pending authorisation that "
    "disappears within 3 days.",
    "account_login": "Reset your password at Sign in > Forgot password; the email can take 10 minutes to arrive.",
    "shipping_cost": "Standard delivery is free over 40 euros (3-5 days); express costs 6.90 euros (next day).",
}

CHOICE = re.compile(r"\{([^{}]*)\}")
KEYBOARD = {
    row[i]: row[i + 1] if i + 1 < len(row) else row[i - 1]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}  # the key to the right


def expand(frame: str, rng: random.Random) -> str:
    """Pick one option of every `{a|b}` (innermost first), then fill the slots."""
    while CHOICE.search(frame):
        frame = CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), frame)
    slots = {
        "<item>": rng.choice(ITEMS),
        "<days>": str(rng.randint(2, 14)),
        "<order>": f"#{rng.randint(10000, 99999)}",
        "<when>": rng.choice(WHEN),
    }
    for slot, value in slots.items():
        frame = frame.replace(slot, value)
    return frame


def typo(word: str, rng: random.Random) -> str:
    """One slip of the fingers: two letters swapped, one dropped, doubled, or a neighbouring key."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + KEYBOARD.get(word[i], word[i]) + word[i + 1 :]


def with_typos(message: str, rate: float, rng: random.Random) -> str:
    words = message.split(" ")
    for i, word in enumerate(words):
        if len(word) >= 4 and word.isalpha() and rng.random() < rate:
            words[i] = typo(word, rng)
    return " ".join(words)


def message(frames: list[str], chatty: bool, rng: random.Random) -> str:
    """A frame, maybe with a context sentence before or after it, a greeting, a closer and typos."""
    text = expand(rng.choice(frames), rng)
    context, openers, closers = (CONTEXT_B, OPENERS_B, CLOSERS_B) if chatty else (CONTEXT_A, OPENERS_A, CLOSERS_A)
    if rng.random() < 0.3:
        extra = expand(rng.choice(context), rng)
        text = (
            f"{extra}{',' if chatty else ''} {text}" if rng.random() < 0.5 else f"{text}{',' if chatty else ''} {extra}"
        )
    opener = rng.choice(openers)
    if (opener.endswith(", ") or chatty) and not re.match(r"I\b", text):
        text = text[0].lower() + text[1:]
    text = opener + text + rng.choice(closers)
    if chatty and rng.random() < 0.3:
        text = text.replace("'", "")
    return with_typos(text, 0.06 if chatty else 0.02, rng)


def compose(frames: dict[str, list[str]], chatty: bool, seed: int) -> list[tuple[str, str]]:
    """`PER_INTENT` distinct messages per intent, shuffled."""
    rng = random.Random(seed)
    rows = []
    for intent, options in frames.items():
        seen: set[str] = set()
        while len(seen) < PER_INTENT:
            text = message(options, chatty, rng)
            if text not in seen:
                seen.add(text)
                rows.append((text, intent))
    rng.shuffle(rows)
    return rows


def unseen_share(rows: list[tuple[str, str]], seed: int = 0) -> float:
    """Of a random fifth of the messages, the share of word trigrams that the other four fifths never use."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = len(rows) // 5

    def trigrams(text: str) -> list[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9']+", text.lower())
        return [tuple(words[i : i + 3]) for i in range(len(words) - 2)]

    seen = {g for i in order[cut:] for g in trigrams(rows[i][0])}
    held = [g for i in order[:cut] for g in trigrams(rows[i][0])]
    return sum(g not in seen for g in held) / len(held)


def write(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    sets = {"tickets.csv": compose(FRAMES_A, False, seed=1), "tickets_b.csv": compose(FRAMES_B, True, seed=2)}
    for name, rows in sets.items():
        write(HERE / name, ("message", "intent"), rows)
        frames = sum(map(len, (FRAMES_A if name == "tickets.csv" else FRAMES_B).values()))
        print(
            f"{name}: {len(rows)} synthetic messages (8 intents x {PER_INTENT}) from {frames} frames; "
            f"{unseen_share(rows):.0%} of a held-out fifth's word trigrams are unseen in the rest"
        )
    labelled: dict[str, int] = {}
    inbox = []
    for message, intent in sets["tickets.csv"]:
        labelled[intent] = labelled.get(intent, 0) + 1
        inbox.append((message, intent if labelled[intent] <= INBOX_LABELLED else ""))
    write(HERE / "inbox.csv", ("message", "intent"), inbox)
    write(HERE / "answers.csv", ("intent", "answer"), list(ANSWERS.items()))
