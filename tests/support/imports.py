"""Sample export files of each source, generated the way each tool writes them."""
from __future__ import annotations

import csv
import io

MAILCHIMP_HEADER = [
    "Email Address", "First Name", "Last Name", "MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP",
    "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE",
    "CC", "REGION", "LAST_CHANGED", "LEID", "EUID", "NOTES", "TAGS",
]
MAILCHIMP_UNSUB_HEADER = MAILCHIMP_HEADER + [
    "UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
    "UNSUB_REASON_OTHER",
]
BREVO_HEADER = ["CONTACT ID", "EMAIL", "FIRSTNAME", "LASTNAME", "SMS", "DOUBLE_OPT-IN",
                "OPT_IN", "EMAIL_BLACKLISTED", "ADDED_TIME", "MODIFIED_TIME"]
ACT_HEADER = ["Contact", "Company", "E-mail", "Newsletter opt-in", "Opt-in date",
              "Create Date", "Edit Date"]


def to_csv(header: list[str], rows: list[dict[str, str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: row.get(name, "") for name in header})
    return out.getvalue()


def mailchimp_subscribed() -> str:
    """Three subscribers: a double opt-in, a single opt-in, one with no times; one bad."""
    return to_csv(MAILCHIMP_HEADER, [
        {"Email Address": "ada@example.eu", "First Name": "Ada", "OPTIN_TIME": "2023-03-01 09:00:00",
         "OPTIN_IP": "192.0.2.10", "CONFIRM_TIME": "2023-03-01 09:05:12",
         "CONFIRM_IP": "192.0.2.11", "MEMBER_RATING": "4", "LEID": "101"},
        {"Email Address": "bob@example.eu", "First Name": "Bob",
         "OPTIN_TIME": "2022-11-20 18:30:00", "OPTIN_IP": "198.51.100.7", "LEID": "102"},
        {"Email Address": "cleo@example.eu", "First Name": "Cléo", "LEID": "103"},
        {"Email Address": "not-an-address", "OPTIN_TIME": "2022-01-01 10:00:00"},
        {"Email Address": "dan@example.eu", "OPTIN_TIME": "yesterday-ish"},
    ])


def mailchimp_unsubscribed() -> str:
    return to_csv(MAILCHIMP_UNSUB_HEADER, [
        {"Email Address": "bob@example.eu", "OPTIN_TIME": "2022-11-20 18:30:00",
         "UNSUB_TIME": "2024-02-02 08:00:00", "UNSUB_REASON": "Too many e-mails"},
    ])


def brevo() -> str:
    return to_csv(BREVO_HEADER, [
        {"CONTACT ID": "1", "EMAIL": "eve@example.eu", "FIRSTNAME": "Eve", "DOUBLE_OPT-IN": "Yes",
         "OPT_IN": "Yes", "EMAIL_BLACKLISTED": "No", "ADDED_TIME": "2024-05-10 14:00:00"},
        {"CONTACT ID": "2", "EMAIL": "fay@example.eu", "OPT_IN": "Yes",
         "EMAIL_BLACKLISTED": "No", "ADDED_TIME": "2024-06-01 10:00:00"},
        {"CONTACT ID": "3", "EMAIL": "gus@example.eu", "OPT_IN": "No", "DOUBLE_OPT-IN": "No",
         "EMAIL_BLACKLISTED": "No"},
        {"CONTACT ID": "4", "EMAIL": "hal@example.eu", "OPT_IN": "Yes",
         "EMAIL_BLACKLISTED": "Yes", "ADDED_TIME": "2023-01-01 10:00:00",
         "MODIFIED_TIME": "2024-01-01 10:00:00"},
    ], delimiter=";")


def act_export() -> str:
    return to_csv(ACT_HEADER, [
        {"Contact": "Ida Martin", "E-mail": "ida@example.eu", "Newsletter opt-in": "Oui",
         "Opt-in date": "15/01/2024 10:30"},
        {"Contact": "Jo Petit", "E-mail": "jo@example.eu", "Newsletter opt-in": "Yes"},
        {"Contact": "Kim Roy", "E-mail": "kim@example.eu", "Newsletter opt-in": "No"},
        {"Contact": "Lea Blanc", "E-mail": "", "Newsletter opt-in": "Yes"},
    ])


WORDING = "Yes, send me the monthly newsletter. I can unsubscribe at any time."


def generic() -> str:
    header = ["email", "purpose", "consent", "opted_in_at", "optin_ip", "confirmed_at",
              "confirm_ip", "double_opt_in", "refused_at", "wording"]
    return to_csv(header, [
        {"email": "max@example.eu", "purpose": "newsletter", "consent": "yes",
         "opted_in_at": "2024-01-10T08:00:00Z", "optin_ip": "203.0.113.5",
         "confirmed_at": "2024-01-10T08:03:00Z", "confirm_ip": "203.0.113.5",
         "double_opt_in": "yes", "wording": WORDING},
        {"email": "max@example.eu", "purpose": "promotions", "consent": "yes",
         "opted_in_at": "2024-01-10T08:00:00+01:00"},
        {"email": "ned@example.eu", "purpose": "events", "consent": "yes"},
        {"email": "ola@example.eu", "purpose": "newsletter", "consent": "no",
         "refused_at": "2024-03-03 12:00:00"},
        {"email": "pia@example.eu", "purpose": "gardening", "consent": "yes"},
        {"email": "quinn@example.eu", "purpose": "newsletter", "consent": "maybe"},
    ])


def generic_rows(count: int, start: int = 0) -> str:
    """``count`` generated generic rows, a third of each grade (benchmarks, big tests)."""
    header = ["email", "consent", "opted_in_at", "optin_ip", "confirmed_at", "confirm_ip",
              "double_opt_in", "wording"]
    rows = []
    for n in range(start, start + count):
        row = {"email": f"person{n}@example.eu", "consent": "yes"}
        if n % 3 != 2:
            row["opted_in_at"] = f"2023-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z"
        if n % 3 == 0:
            row.update(optin_ip="192.0.2.1", confirmed_at=row["opted_in_at"].replace("10:", "11:"),
                       confirm_ip="192.0.2.2", double_opt_in="yes", wording=WORDING)
        rows.append(row)
    return to_csv(header, rows)
