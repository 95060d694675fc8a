"""What a fresh simulated Act! database holds: standard fields, history types, demo data.

Column names of Act!'s built-in contact fields and history type ids are not published;
the ones here are plausible stand-ins ([I] in NOTES.md terms). What matters, and is
faithful, is the shape: built-in fields map to top-level Contact properties, every
other field (``USER6`` shown as "Industry", ``CUST_...`` fields made through the API)
is a key of ``customFields``, lower-cased.
"""
from __future__ import annotations

from typing import Any

#: Built-in contact fields: (display name, column name, Act! type, length, Contact property path, read-only)
BUILTIN_FIELDS: list[tuple[str, str, str, int, str, bool]] = [
    ("Contact", "FULLNAME", "Character", 150, "fullName", False),
    ("First Name", "FIRSTNAME", "Character", 50, "firstName", False),
    ("Middle Name", "MIDDLENAME", "Character", 50, "middleName", False),
    ("Last Name", "LASTNAME", "Character", 50, "lastName", False),
    ("Salutation", "SALUTATION", "Character", 50, "salutation", False),
    ("Title", "JOBTITLE", "Character", 64, "jobTitle", False),
    ("Company", "COMPANYNAME", "Character", 128, "company", False),
    ("Department", "DEPARTMENT", "Character", 64, "department", False),
    ("E-mail", "BUSINESS_EMAIL", "Email", 128, "emailAddress", False),
    ("Alternate E-mail", "ALTERNATE_EMAIL", "Email", 128, "altEmailAddress", False),
    ("Personal E-mail", "PERSONAL_EMAIL", "Email", 128, "personalEmailAddress", False),
    ("Phone", "BUSINESS_PHONE", "Phone", 32, "businessPhone", False),
    ("Mobile Phone", "MOBILE_PHONE", "Phone", 32, "mobilePhone", False),
    ("Address 1", "BUSINESS_LINE1", "Character", 128, "businessAddress/line1", False),
    ("City", "BUSINESS_CITY", "Character", 64, "businessAddress/city", False),
    ("State", "BUSINESS_STATE", "Character", 64, "businessAddress/state", False),
    ("ZIP Code", "BUSINESS_POSTALCODE", "Character", 32, "businessAddress/postalCode", False),
    ("Country", "BUSINESS_COUNTRY", "Character", 64, "businessAddress/country", False),
    ("Web Site", "WEBSITE", "Url", 255, "website", False),
    ("Birthday", "BIRTH_DATE", "AnnualEvent", 0, "birthday", False),
    ("ID/Status", "IDSTATUS", "Character", 64, "idStatus", False),
    ("Referred By", "REFERREDBY", "Character", 64, "referredBy", False),
    ("Create Date", "CREATEDATE", "DateTime", 0, "created", True),
    ("Edit Date", "EDITDATE", "DateTime", 0, "edited", True),
    ("Record Manager", "MANAGEUSERID", "Character", 64, "recordManager", True),
]

#: Fields every database has that live in ``customFields`` (keys as a live install showed).
STANDARD_CUSTOM_FIELDS: list[tuple[str, str, str, int]] = [
    ("User 1", "USER1", "Character", 50),
    ("Industry", "USER6", "Character", 50),
    ("Territory", "TERRITORY", "Character", 32),
    ("Priority", "PRIORITY", "Character", 16),
    ("E-mail 2", "EMAIL_2_EMAIL", "Email", 128),
]

#: (id, name, activity type id, activity type name, user-recordable);
#: ids 0, 1, 3, 13 and 16 are the ones one install had.
HISTORY_TYPES: list[tuple[int, str, str | None, str | None, bool]] = [
    (0, "Call Attempted", "1", "Call", True),
    (1, "Call Completed", "1", "Call", True),
    (2, "Call Left Message", "1", "Call", True),
    (3, "Field Changed", None, None, False),
    (4, "Meeting Held", "2", "Meeting", True),
    (5, "To-do Done", "3", "To-do", True),
    (6, "Letter Sent", None, None, True),
    (13, "Contact Updated", None, None, False),
    (16, "E-mail Sent", None, None, True),
    (17, "Contact Created", None, None, False),
    (26, "General", None, None, True),
    (27, "Opportunity", None, None, True),
]

#: The e-mail of the contact ``make run`` mints its demo link for.
DEMO_EMAIL = "demo@example.com"

#: Demo contacts, oldest first. ``days_ago`` places ``created``/``edited`` in the past.
DEMO_CONTACTS: list[dict[str, Any]] = [
    {"firstName": "Dana", "lastName": "Demo", "emailAddress": DEMO_EMAIL, "company": "Example Ltd",
     "jobTitle": "Marketing Manager", "businessPhone": "+44 20 7946 0000",
     "businessAddress": {"line1": "1 Demo Street", "city": "London", "postalCode": "EC1A 1AA",
                         "country": "United Kingdom"},
     "customFields": {"user6": "Software", "territory": "UK", "priority": "High"}, "days_ago": 40},
    {"firstName": "Siobhán", "lastName": "O'Brien", "emailAddress": "o'brien@example.ie",
     "company": "Cló Atlantach Teo.", "jobTitle": "Director",
     "businessAddress": {"line1": "12 Sráid an Chaisleáin", "city": "Baile Átha Cliath",
                         "postalCode": "D02 X285", "country": "Ireland"},
     "customFields": {"user6": "Publishing", "territory": "IE"}, "days_ago": 35},
    {"firstName": "Zoë", "lastName": "Müller", "emailAddress": "zoe.mueller@example.de",
     "company": "Müller & Söhne GmbH", "jobTitle": "Geschäftsführerin",
     "businessAddress": {"line1": "Königsallee 5", "city": "Köln", "postalCode": "50667",
                         "country": "Deutschland"},
     "customFields": {"user6": "Maschinenbau", "territory": "DACH"}, "days_ago": 30},
    {"firstName": "François", "lastName": "Lefèvre", "emailAddress": "f.lefevre@example.fr",
     "company": "Société Générale de Démonstration", "jobTitle": "Responsable achats",
     "businessAddress": {"line1": "8 rue de l'Église", "city": "Paris", "postalCode": "75004",
                         "country": "France"},
     "customFields": {"user6": "Banque"}, "days_ago": 28},
    {"firstName": "José", "lastName": "Álvarez Núñez", "emailAddress": "jose.alvarez@example.es",
     "company": "Álvarez y Compañía", "businessAddress": {"city": "Sevilla", "country": "España"},
     "customFields": {"user6": "Turismo"}, "days_ago": 25},
    {"firstName": "Łukasz", "lastName": "Wiśniewski", "emailAddress": "lukasz@example.pl",
     "company": "Wiśniewski Sp. z o.o.", "businessAddress": {"city": "Kraków", "country": "Polska"},
     "days_ago": 21},
    {"firstName": "太郎", "lastName": "山田", "emailAddress": "yamada@example.jp",
     "company": "山田商事株式会社", "businessAddress": {"city": "東京", "country": "日本"},
     "customFields": {"user6": "商社"}, "days_ago": 18},
    {"firstName": "Björn", "lastName": "Åström", "emailAddress": "Bjorn.Astrom@Example.SE",
     "company": "Åström AB", "businessAddress": {"city": "Göteborg", "country": "Sverige"},
     "customFields": {"priority": "Low"}, "days_ago": 14},
    {"firstName": "Maria", "lastName": "Rossi", "emailAddress": "maria.rossi@example.it",
     "company": "Rossi S.r.l.", "businessAddress": {"city": "Milano", "country": "Italia"},
     "days_ago": 10},
    {"firstName": "Emma", "lastName": "Dupont", "emailAddress": "emma.dupont@example.be",
     "company": "Dupont SRL", "aemOptOut": True,
     "businessAddress": {"city": "Bruxelles", "country": "Belgique"}, "days_ago": 7},
    {"firstName": "Priya", "lastName": "Natarajan", "emailAddress": "priya.natarajan@example.in",
     "company": "Natarajan Textiles", "businessAddress": {"city": "Chennai", "country": "India"},
     "customFields": {"user6": "Textiles", "email_2_email": "priya@example.org"}, "days_ago": 4},
    {"firstName": "Chris", "lastName": "Walk-in", "emailAddress": None, "company": "No E-mail Ltd",
     "businessPhone": "+353 1 555 0100", "days_ago": 2},
]

#: Demo groups: name, description, indexes into DEMO_CONTACTS.
DEMO_GROUPS: list[tuple[str, str, list[int]]] = [
    ("Newsletter Subscribers", "Contacts who asked for the monthly newsletter", [0, 2, 3, 7]),
    ("Trade Fair 2026 Leads", "Met at the trade fair stand", [4, 5, 8, 10]),
]

#: The user that seeded records name as their editor and creator.
SEED_USER = "Act! Administrator"
