"""Rebuild the ranked name tables the synthetic generator samples from.

    pip install -e ".[names]" && python scripts/build_name_tables.py

Sources (both on PyPI): ``names-dataset`` (ranked first names by sex and surnames for
106 countries, from a large social-network sample) and ``nicknames`` (hand-curated
English name/nickname pairs). Loading names-dataset takes ~2 GB and ~15 s, so the
generator reads the small derived tables this script commits under
``datafirst_spark/reference/`` instead.

Each *origin* is the name pool of a community in England. Where names-dataset has no
country (Pakistan, Somalia), the pool is derived and said so below. The British pool
drops names that rank higher in an immigrant-origin pool than in Britain's (the sample
includes British residents of every origin: 'Khan' is 8th in its GB surnames), so that
a 'Khan' is drawn through the Pakistani pool at the rate of that community instead.
"""

from __future__ import annotations

import csv
import gzip
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "datafirst_spark" / "reference"

FORENAMES_PER_SEX = 1500
SURNAMES = 4000
BRITISH_SURNAMES = 15000

# origin -> countries whose rankings are merged (best rank wins)
ORIGINS: dict[str, list[str]] = {
    "british": ["GB"],
    "irish": ["IE"],
    "polish": ["PL"],
    "lithuanian": ["LT"],
    "portuguese": ["PT"],
    "turkish": ["TR"],
    "caribbean": ["JM"],
    "nigerian": ["NG"],
    "ghanaian": ["GH"],
    "somali": ["DJ"],  # Djibouti's names are Somali names
    "indian": ["IN"],
    "pakistani": ["IN"],  # derived below
    "bangladeshi": ["BD"],
    "chinese": ["HK", "CN"],  # most British Chinese families are Cantonese-speaking
    "arab": ["IQ", "SY", "EG"],
    "afghan": ["AF"],
}
# The sample has no Pakistan. The Pakistani pool is a short head of the commonest British
# Pakistani names in rough frequency order, then India's names that also rank in Muslim-
# majority countries' samples (the subcontinent's Muslim names); the Indian pool is India's
# names less those. Hindu and Sikh names that Bengali and Gulf samples also hold stay Indian.
MUSLIM_REFERENCE = ["IQ", "SY", "EG", "AF"]
HINDU_SIKH = {"Kumar", "Singh", "Sharma", "Das", "Roy", "Patel", "Yadav", "Gupta", "Kaur", "Devi",
              "Rani", "Raj", "Verma", "Mishra", "Pandey", "Jain", "Mehta", "Joshi", "Rao", "Reddy",
              "Nair", "Pillai", "Gill", "Sandhu", "Sidhu", "Dhillon", "Mistry", "Parmar", "Saini",
              "Thakur", "Chauhan", "Rajput", "Jadhav", "Paul", "Ram", "Lal", "Prasad", "Dutta",
              "Ghosh", "Sen", "Bose", "Sarkar", "Mondal", "Biswas", "Saha", "Dey", "Kapoor",
              "Rahul", "Amit", "Sunil", "Sanjay", "Ajay", "Deepak", "Rajesh", "Vijay", "Ravi",
              "Priya", "Pooja", "Neha", "Sunita", "Anita", "Jyoti", "Priyanka", "Kiran", "Ritu"}
PAKISTANI_HEAD_SURNAMES = [
    "Khan", "Hussain", "Ali", "Ahmed", "Iqbal", "Akhtar", "Mahmood", "Shah", "Begum", "Bibi",
    "Butt", "Rehman", "Aslam", "Malik", "Mohammed", "Anwar", "Ashraf", "Bashir", "Javed", "Rashid",
    "Saleem", "Qureshi", "Mirza", "Nawaz", "Riaz", "Sharif", "Tariq", "Yousaf", "Akram", "Arshad",
    "Hanif", "Haq", "Hameed", "Jamil", "Khalid", "Majid", "Nazir", "Parveen", "Rafiq", "Sadiq",
    "Shafiq", "Yaqoob", "Zaman", "Aziz", "Latif", "Kauser", "Raja", "Mehmood", "Siddique", "Abbas",
]
PAKISTANI_HEAD_FORENAMES = {
    "M": ["Mohammed", "Muhammad", "Ali", "Imran", "Adam", "Usman", "Bilal", "Hamza", "Zain",
          "Ibrahim", "Yusuf", "Omar", "Hassan", "Umar", "Asif", "Kamran", "Adnan", "Faisal",
          "Zubair", "Tariq", "Waqas", "Shahid", "Abdul", "Amir", "Haris", "Danyal", "Ayaan"],
    "F": ["Aisha", "Fatima", "Maryam", "Zainab", "Amina", "Sana", "Hira", "Iqra", "Nadia",
          "Saima", "Sadia", "Ayesha", "Khadija", "Mariam", "Hafsa", "Zara", "Alisha", "Rabia",
          "Sobia", "Samina", "Nabila", "Shazia", "Bushra", "Asma", "Noor", "Hannah", "Safa"],
}
IMMIGRANT_REFERENCE = ["IN", "BD", "AF", "SA", "HK", "CN", "NG", "GH", "PL", "TR", "DJ"]
NOT_NAMES = {"Md", "Sk", "Mst", "Mohd", "Mr", "Mrs", "Ms", "Dr", "Unruly", "Baby", "Miss",
             "Nesvarbu", "Gh", "Sy", "India", "Pakistan", "Afghan", "Nigeria", "Ghana"}
# Latin script only: the extracts are keyed in from English forms. Two-letter names only
# where they are real (Li, Wu, Ng...), i.e. in the Chinese pool.
LATIN = "A-Za-zÀ-ÖØ-öø-ÿĀ-ž"
NAME_SHAPE = re.compile(rf"^[{LATIN}]{{3,}}(?:[ '-][{LATIN}]{{2,}})?$")
SHORT_NAME_SHAPE = re.compile(rf"^[{LATIN}]{{2}}$")
SHORT_NAME_ORIGINS = {"chinese"}

_origin = ""


def usable(name: str) -> bool:
    if name in NOT_NAMES:
        return False
    return bool(NAME_SHAPE.match(name)) or (
        _origin in SHORT_NAME_ORIGINS and bool(SHORT_NAME_SHAPE.match(name))
    )


def ranked(lists: list[list[str]]) -> list[str]:
    """Merge several ranked lists: a name's rank is its best rank in any of them."""
    best: dict[str, int] = {}
    for names in lists:
        for rank, name in enumerate(names):
            if usable(name) and rank < best.get(name, 10**9):
                best[name] = rank
    return sorted(best, key=best.__getitem__)


def head_then(head: list[str], tail: list[str]) -> list[str]:
    return head + [name for name in tail if name not in set(head)]


def main() -> int:
    from names_dataset import NameDataset
    from nicknames import with_names_csv_path  # noqa: F401 - presence check

    import nicknames

    nd = NameDataset()

    def top(country: str, n: int, first: bool, gender: str | None = None) -> list[str]:
        result = nd.get_top_names(n=n, use_first_names=first, country_alpha2=country, gender=gender)
        names = result.get(country, [])
        return names if isinstance(names, list) else names.get(gender or "", [])

    forename_rows: list[tuple[str, str, str, int]] = []
    surname_rows: list[tuple[str, str, int]] = []
    reference_surnames = {c: set(top(c, 300, False)) for c in IMMIGRANT_REFERENCE}
    reference_forenames = {
        (c, g): set(top(c, 300, True, g)) for c in IMMIGRANT_REFERENCE for g in ("M", "F")
    }
    muslim_surnames = set().union(*(top(c, 3000, False) for c in MUSLIM_REFERENCE)) - HINDU_SIKH
    muslim_forenames = {
        g: set().union(*(top(c, 1500, True, g) for c in MUSLIM_REFERENCE)) - HINDU_SIKH
        for g in ("M", "F")
    }

    global _origin
    for origin, countries in ORIGINS.items():
        _origin = origin
        n_surnames = BRITISH_SURNAMES if origin == "british" else SURNAMES
        surnames = ranked([top(c, n_surnames * 2, False) for c in countries])
        if origin == "british":
            surnames = [s for s in surnames if not any(s in ref for ref in reference_surnames.values())
                        or s in {"Smith", "Brown", "Johnson", "Williams", "Jones", "Taylor"}]
        elif origin == "pakistani":
            surnames = head_then(PAKISTANI_HEAD_SURNAMES, [s for s in surnames if s in muslim_surnames])
        elif origin == "indian":
            surnames = [s for s in surnames if s not in muslim_surnames]
        surname_rows += [(origin, s, r + 1) for r, s in enumerate(surnames[:n_surnames])]

        for sex in ("M", "F"):
            names = ranked([top(c, FORENAMES_PER_SEX * 2, True, sex) for c in countries])
            if origin == "british":
                names = [n for n in names
                         if not any(n in ref for (c, g), ref in reference_forenames.items() if g == sex)
                         or n in {"John", "David", "James", "Michael", "Mary", "Sarah", "Daniel"}]
            elif origin == "pakistani":
                names = head_then(PAKISTANI_HEAD_FORENAMES[sex],
                                  [n for n in names if n in muslim_forenames[sex]])
            elif origin == "indian":
                names = [n for n in names if n not in muslim_forenames[sex]]
            forename_rows += [(origin, sex, n, r + 1) for r, n in enumerate(names[:FORENAMES_PER_SEX])]
        print(f"{origin:12s} surnames={min(len(surnames), n_surnames):6d} "
              f"top={surnames[:6]}", file=sys.stderr)

    _origin = ""
    nickname_rows: set[tuple[str, str]] = set()
    source = Path(nicknames.__file__).parent / "names.csv"
    with source.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["relationship"] == "has_nickname" and usable(row["name2"].title()):
                nickname_rows.add((row["name1"].title(), row["name2"].title()))

    OUT.mkdir(parents=True, exist_ok=True)
    write(OUT / "forenames.csv.gz", ["origin", "sex", "name", "rank"], forename_rows)
    write(OUT / "surnames.csv.gz", ["origin", "name", "rank"], surname_rows)
    write(OUT / "nicknames.csv.gz", ["name", "nickname"], sorted(nickname_rows))
    return 0


def write(path: Path, header: list[str], rows: list[tuple]) -> None:
    # mtime=0 keeps the gzip bytes identical across rebuilds of the same data
    with gzip.GzipFile(path, "wb", mtime=0) as raw, open_text(raw) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)", file=sys.stderr)


def open_text(raw):
    import io

    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


if __name__ == "__main__":
    sys.exit(main())
