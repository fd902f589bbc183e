"""Write the SYNTHETIC customer-service example sets: tickets.csv, tickets_b.csv and answers.csv.

Every message is composed by this script from hand-written phrases (no real customer wrote any of
them), so no accuracy measured on these files says anything about real-world traffic.
`tickets.csv` is written in a plain, polite register; `tickets_b.csv` holds the same eight intents
in a second, differently worded register (chatty, informal, other phrases and typos), so a model
can be trained on one and scored on the other. Rerun to regenerate: `python examples/make_tickets.py`.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent
PER_INTENT = 50

# Set A: plain, polite register. {item} {days} {order} are filled in per message.
PLAIN = {
    "track_order": [
        "Where is my parcel?",
        "Can you tell me where my order {order} is?",
        "My package has not arrived yet.",
        "I ordered a {item} {days} days ago and it is still not here.",
        "How can I track my delivery?",
        "Has my order {order} been shipped?",
        "When will my {item} be delivered?",
        "The tracking page shows no update for my order.",
        "Is there a tracking number for my purchase?",
        "My delivery is late, where is it?",
    ],
    "cancel_order": [
        "Please cancel my order {order}.",
        "I want to cancel the {item} I ordered.",
        "Can I still cancel my purchase?",
        "I changed my mind, please stop the order.",
        "How do I cancel an order I placed {days} days ago?",
        "Cancel order {order}, I no longer need it.",
        "I ordered the wrong {item} by mistake, please cancel it.",
        "Is it too late to cancel my order?",
        "I would like to withdraw my order before it ships.",
        "Please do not send the {item}, I want to cancel.",
    ],
    "return_item": [
        "How do I return a {item}?",
        "I would like to send back the {item} I received.",
        "The {item} does not fit, can I return it?",
        "What is your return policy?",
        "I need a return label for order {order}.",
        "The {item} arrived damaged and I want to return it.",
        "Can I exchange the {item} for a different size?",
        "How many days do I have to return an item?",
        "I want to return part of order {order}.",
        "Where do I drop off a return?",
    ],
    "refund_status": [
        "When will I get my refund?",
        "I returned the {item} {days} days ago and have not been refunded.",
        "Has my refund for order {order} been processed?",
        "How long does a refund take?",
        "I still have not received my money back.",
        "The refund for my {item} is missing from my account.",
        "Can you check the status of my refund?",
        "You confirmed my return but the refund never came.",
        "Will the refund go to my original card?",
        "My refund was only partial, why?",
    ],
    "change_address": [
        "I need to change my delivery address.",
        "Can I update the shipping address on order {order}?",
        "I moved, please send the {item} to my new address.",
        "The address on my order is wrong.",
        "How do I edit my address before the order ships?",
        "Please deliver order {order} to my office instead.",
        "I typed the wrong street name in my address.",
        "Can the courier bring the {item} to a different address?",
        "Update my postcode on the order please.",
        "I want to change where my parcel is delivered.",
    ],
    "payment_issue": [
        "My card was declined at checkout.",
        "I was charged twice for order {order}.",
        "The payment failed but money left my account.",
        "Which payment methods do you accept?",
        "Why was my card charged {days} times?",
        "I cannot pay with my credit card.",
        "There is an unknown charge from your shop on my statement.",
        "The checkout page gives a payment error.",
        "Can I pay for the {item} in instalments?",
        "My voucher code was not applied to the payment.",
    ],
    "account_login": [
        "I cannot log in to my account.",
        "I forgot my password.",
        "How do I reset my password?",
        "My account is locked after too many attempts.",
        "I never received the password reset email.",
        "The login page says my email is not registered.",
        "How do I change the email address of my account?",
        "I want to delete my account.",
        "Two-factor code does not arrive when I sign in.",
        "I cannot sign in with my new password.",
    ],
    "shipping_cost": [
        "How much does shipping cost?",
        "Is delivery free for orders over a certain amount?",
        "Do you ship abroad and what does it cost?",
        "How much is express delivery for a {item}?",
        "Why is the delivery fee so high?",
        "What are your shipping options?",
        "How long does standard delivery take?",
        "Do you offer next day delivery?",
        "Is there a shipping charge on returns?",
        "Can I collect the {item} in store to avoid delivery fees?",
    ],
}

# Set B: the same intents, chatty and informal, written with other words (and a few typos).
CHATTY = {
    "track_order": [
        "hey so my stuff still hasnt shown up, any idea whats going on",
        "its been {days} days and no sign of the {item}, is it lost??",
        "ordered ages ago, nothing arrived, can u check {order}",
        "courier never came, my box is nowhere",
        "what's the status on my shipment, kinda waiting here",
        "the {item} was supposed to be here yesterday, still nothing",
        "um where's my package at",
        "no delivery yet, is it stuck somewhere?",
    ],
    "cancel_order": [
        "actually nvm, dont want the {item} anymore, scrap it",
        "pls stop {order} before it goes out",
        "clicked buy by accident lol, undo that",
        "can u kill my order, found it cheaper elsewhere",
        "dont ship it, i dont need it anymore",
        "i'd like to call off the purchase i made {days} days back",
        "scrap the whole thing, i'm not buying after all",
        "oops wrong {item}, please dont process it",
    ],
    "return_item": [
        "the {item} is way too small, sending it back ok?",
        "got the {item} and honestly hate it, how do i give it back",
        "box came all smashed, want to send this back",
        "what's the deal with sending stuff back to you guys",
        "need to ship the {item} back, what do i do",
        "the colour is totally off, can i swap it",
        "want to give back the {item}, it's broken",
        "how do i get a label to post this back",
    ],
    "refund_status": [
        "still waiting on my money from that return",
        "sent the {item} back {days} days ago, where's my cash",
        "u guys owe me money for {order}",
        "is my money coming back or what",
        "money from the return hasnt hit my bank yet",
        "how long till i see the cash back on my card",
        "return was received but no money, whats up",
        "i only got half my money back??",
    ],
    "change_address": [
        "just moved house, send the {item} to the new place pls",
        "oops put my old flat on the order, can u fix",
        "can the parcel go to my work instead of home",
        "wrong house number on {order}, help",
        "need it sent somewhere else, i won't be home",
        "typo in my street on the order lol",
        "i'm staying at my mum's, ship it there instead?",
        "swap the destination for my parcel please",
    ],
    "payment_issue": [
        "card keeps getting rejected, wtf",
        "got billed two times for the same {item}",
        "checkout just errors when i hit pay",
        "money's gone from my bank but the order failed??",
        "can i use paypal or only cards",
        "theres a weird charge from you on my bank",
        "promo code didnt knock anything off the price",
        "do u do pay later / split payments",
    ],
    "account_login": [
        "cant get into my account at all",
        "lost my pasword, help",
        "reset link never shows up in my inbox",
        "locked out after typing the wrong pw a few times",
        "it says no user with my email??",
        "sms code for signing in never comes",
        "want to close my profile for good",
        "new password doesnt work when i sign in",
    ],
    "shipping_cost": [
        "how much to get it sent to me",
        "is postage free if i spend more",
        "do u send to canada and how much",
        "whats the price for fast delivery on a {item}",
        "postage is crazy expensive, why",
        "can i pick up the {item} at a shop instead of paying for delivery",
        "how many days does normal post take",
        "any chance of getting it tomorrow, how much extra",
    ],
}

ITEMS = ["jacket", "phone case", "pair of shoes", "lamp", "backpack", "kettle", "blender", "dress", "keyboard", "watch"]
OPENERS_A = ["", "", "Hello, ", "Hi, ", "Good morning. ", "Hello there. "]
CLOSERS_A = ["", "", " Thank you.", " Thanks in advance.", " Kind regards."]
OPENERS_B = ["", "", "yo ", "hiya ", "ok so ", "hey, "]
CLOSERS_B = ["", "", " thx", " cheers", " asap pls", " :("]

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


def _fill(template: str, rng: random.Random) -> str:
    return template.format(item=rng.choice(ITEMS), days=rng.randint(2, 14), order=f"#{rng.randint(10000, 99999)}")


def compose(phrases: dict[str, list[str]], openers: list[str], closers: list[str], seed: int) -> list[tuple[str, str]]:
    """`PER_INTENT` messages per intent: a phrase with its slots filled, an optional opener and closer."""
    rng = random.Random(seed)
    rows = []
    for intent, templates in phrases.items():
        seen: set[str] = set()
        while len(seen) < PER_INTENT:
            opener, phrase = rng.choice(openers), _fill(rng.choice(templates), rng)
            if opener.endswith(", "):  # "Hi, where is ...", not "Hi, Where is ..."
                phrase = phrase[0].lower() + phrase[1:]
            message = opener + phrase + rng.choice(closers)
            if message not in seen:
                seen.add(message)
                rows.append((message, intent))
    rng.shuffle(rows)
    return rows


def write(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    write(HERE / "tickets.csv", ("message", "intent"), compose(PLAIN, OPENERS_A, CLOSERS_A, seed=1))
    write(HERE / "tickets_b.csv", ("message", "intent"), compose(CHATTY, OPENERS_B, CLOSERS_B, seed=2))
    write(HERE / "answers.csv", ("intent", "answer"), list(ANSWERS.items()))
    print("wrote tickets.csv, tickets_b.csv (synthetic, 8 intents x 50 messages each) and answers.csv")
