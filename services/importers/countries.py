"""Country codes for importers: FIPS 10-4 (what GDELT's geo fields use) to ISO 3166-1
alpha-2 (what a Place holds), and English country names to ISO codes.

The FIPS table is complete for the codes of the final FIPS 10-4 list and the
ones GDELT still emits. Where FIPS names a place that ISO 3166-1 files under
another code, the ISO code of that place is used (Gaza Strip and West Bank ->
PS, the Iles Eparses -> TF, the US minor islands -> UM). Places ISO has no
country code for (Akrotiri, Dhekelia, the Paracel and Spratly Islands, the
Kuril Islands, oceans) map to nothing: an importer leaves such a place out.
"""

from __future__ import annotations

import re
import unicodedata

# FIPS 10-4, ISO 3166-1 alpha-2 ("-" when ISO has none), English short name.
_TABLE = """
AA AW Aruba
AC AG Antigua and Barbuda
AE AE United Arab Emirates
AF AF Afghanistan
AG DZ Algeria
AJ AZ Azerbaijan
AL AL Albania
AM AM Armenia
AN AD Andorra
AO AO Angola
AQ AS American Samoa
AR AR Argentina
AS AU Australia
AT AU Ashmore and Cartier Islands
AU AT Austria
AV AI Anguilla
AX - Akrotiri
AY AQ Antarctica
BA BH Bahrain
BB BB Barbados
BC BW Botswana
BD BM Bermuda
BE BE Belgium
BF BS Bahamas
BG BD Bangladesh
BH BZ Belize
BK BA Bosnia and Herzegovina
BL BO Bolivia
BM MM Burma
BN BJ Benin
BO BY Belarus
BP SB Solomon Islands
BQ UM Navassa Island
BR BR Brazil
BS TF Bassas da India
BT BT Bhutan
BU BG Bulgaria
BV BV Bouvet Island
BX BN Brunei
BY BI Burundi
CA CA Canada
CB KH Cambodia
CD TD Chad
CE LK Sri Lanka
CF CG Congo (Brazzaville)
CG CD Congo (Kinshasa)
CH CN China
CI CL Chile
CJ KY Cayman Islands
CK CC Cocos (Keeling) Islands
CM CM Cameroon
CN KM Comoros
CO CO Colombia
CQ MP Northern Mariana Islands
CR AU Coral Sea Islands
CS CR Costa Rica
CT CF Central African Republic
CU CU Cuba
CV CV Cabo Verde
CW CK Cook Islands
CY CY Cyprus
DA DK Denmark
DJ DJ Djibouti
DO DM Dominica
DQ UM Jarvis Island
DR DO Dominican Republic
DX - Dhekelia
EC EC Ecuador
EG EG Egypt
EI IE Ireland
EK GQ Equatorial Guinea
EN EE Estonia
ER ER Eritrea
ES SV El Salvador
ET ET Ethiopia
EU TF Europa Island
EZ CZ Czechia
FG GF French Guiana
FI FI Finland
FJ FJ Fiji
FK FK Falkland Islands
FM FM Micronesia
FO FO Faroe Islands
FP PF French Polynesia
FQ UM Baker Island
FR FR France
FS TF French Southern and Antarctic Lands
GA GM Gambia
GB GA Gabon
GG GE Georgia
GH GH Ghana
GI GI Gibraltar
GJ GD Grenada
GK GG Guernsey
GL GL Greenland
GM DE Germany
GO TF Glorioso Islands
GP GP Guadeloupe
GQ GU Guam
GR GR Greece
GT GT Guatemala
GV GN Guinea
GY GY Guyana
GZ PS Gaza Strip
HA HT Haiti
HK HK Hong Kong
HM HM Heard Island and McDonald Islands
HO HN Honduras
HQ UM Howland Island
HR HR Croatia
HU HU Hungary
IC IS Iceland
ID ID Indonesia
IM IM Isle of Man
IN IN India
IO IO British Indian Ocean Territory
IP - Clipperton Island
IR IR Iran
IS IL Israel
IT IT Italy
IV CI Cote d'Ivoire
IZ IQ Iraq
JA JP Japan
JE JE Jersey
JM JM Jamaica
JN SJ Jan Mayen
JO JO Jordan
JQ UM Johnston Atoll
JU TF Juan de Nova Island
KE KE Kenya
KG KG Kyrgyzstan
KN KP North Korea
KQ UM Kingman Reef
KR KI Kiribati
KS KR South Korea
KT CX Christmas Island
KU KW Kuwait
KV XK Kosovo
KZ KZ Kazakhstan
LA LA Laos
LE LB Lebanon
LG LV Latvia
LH LT Lithuania
LI LR Liberia
LO SK Slovakia
LQ UM Palmyra Atoll
LS LI Liechtenstein
LT LS Lesotho
LU LU Luxembourg
LY LY Libya
MA MG Madagascar
MB MQ Martinique
MC MO Macau
MD MD Moldova
MF YT Mayotte
MG MN Mongolia
MH MS Montserrat
MI MW Malawi
MJ ME Montenegro
MK MK North Macedonia
ML ML Mali
MN MC Monaco
MO MA Morocco
MP MU Mauritius
MQ UM Midway Islands
MR MR Mauritania
MT MT Malta
MU OM Oman
MV MV Maldives
MX MX Mexico
MY MY Malaysia
MZ MZ Mozambique
NC NC New Caledonia
NE NU Niue
NF NF Norfolk Island
NG NE Niger
NH VU Vanuatu
NI NG Nigeria
NL NL Netherlands
NN SX Sint Maarten
NO NO Norway
NP NP Nepal
NR NR Nauru
NS SR Suriname
NT - Netherlands Antilles (dissolved in 2010)
NU NI Nicaragua
NZ NZ New Zealand
OD SS South Sudan
OS - Oceans
PA PY Paraguay
PC PN Pitcairn Islands
PE PE Peru
PF - Paracel Islands
PG - Spratly Islands
PJ - Etorofu, Habomai, Kunashiri and Shikotan Islands
PK PK Pakistan
PL PL Poland
PM PA Panama
PO PT Portugal
PP PG Papua New Guinea
PS PW Palau
PU GW Guinea-Bissau
QA QA Qatar
RB RS Serbia
RE RE Reunion
RI RS Serbia
RM MH Marshall Islands
RN MF Saint Martin
RO RO Romania
RP PH Philippines
RQ PR Puerto Rico
RS RU Russia
RW RW Rwanda
SA SA Saudi Arabia
SB PM Saint Pierre and Miquelon
SC KN Saint Kitts and Nevis
SE SC Seychelles
SF ZA South Africa
SG SN Senegal
SH SH Saint Helena
SI SI Slovenia
SL SL Sierra Leone
SM SM San Marino
SN SG Singapore
SO SO Somalia
SP ES Spain
ST LC Saint Lucia
SU SD Sudan
SV SJ Svalbard
SW SE Sweden
SX GS South Georgia and the South Sandwich Islands
SY SY Syria
SZ CH Switzerland
TB BL Saint Barthelemy
TD TT Trinidad and Tobago
TE TF Tromelin Island
TH TH Thailand
TI TJ Tajikistan
TK TC Turks and Caicos Islands
TL TK Tokelau
TN TO Tonga
TO TG Togo
TP ST Sao Tome and Principe
TS TN Tunisia
TT TL Timor-Leste
TU TR Turkey
TV TV Tuvalu
TW TW Taiwan
TX TM Turkmenistan
TZ TZ Tanzania
UC CW Curacao
UG UG Uganda
UK GB United Kingdom
UP UA Ukraine
US US United States
UV BF Burkina Faso
UY UY Uruguay
UZ UZ Uzbekistan
VC VC Saint Vincent and the Grenadines
VE VE Venezuela
VI VG British Virgin Islands
VM VN Vietnam
VQ VI U.S. Virgin Islands
VT VA Vatican City
WA NA Namibia
WE PS West Bank
WF WF Wallis and Futuna
WI EH Western Sahara
WQ UM Wake Island
WS WS Samoa
WZ SZ Eswatini
YI RS Serbia and Montenegro
YM YE Yemen
ZA ZM Zambia
ZI ZW Zimbabwe
"""

_ROWS = [line.split(" ", 2) for line in _TABLE.strip().splitlines()]

FIPS_TO_ISO: dict[str, str] = {fips: iso for fips, iso, _ in _ROWS if iso != "-"}
NO_ISO_CODE: frozenset[str] = frozenset(fips for fips, iso, _ in _ROWS if iso == "-")

# Names people write that are not the short names above.
_ALIASES = {
    "united states of america": "US", "usa": "US", "u.s.": "US", "u.s.a.": "US",
    "america": "US", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "uk": "GB",
    "korea": "KR", "republic of korea": "KR", "korea, south": "KR",
    "korea, north": "KP", "czech republic": "CZ", "russian federation": "RU",
    "myanmar": "MM", "the netherlands": "NL", "holland": "NL", "viet nam": "VN",
    "swaziland": "SZ", "cape verde": "CV", "ivory coast": "CI", "macao": "MO",
    "macedonia": "MK", "bahamas, the": "BS", "gambia, the": "GM", "turkiye": "TR",
    "uae": "AE", "prc": "CN", "people's republic of china": "CN", "republic of china": "TW",
    "palestine": "PS", "vatican": "VA", "holy see": "VA", "east timor": "TL",
    "democratic republic of the congo": "CD", "republic of the congo": "CG",
    "federated states of micronesia": "FM", "brunei darussalam": "BN",
    "moldova, republic of": "MD", "iran, islamic republic of": "IR",
    "tanzania, united republic of": "TZ", "syrian arab republic": "SY",
    "lao people's democratic republic": "LA", "curaçao": "CW", "réunion": "RE",
}


def _normal(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).strip().lower()
    return re.sub(r"\s+", " ", folded)


NAME_TO_ISO: dict[str, str] = {
    **{_normal(name): iso for _, iso, name in _ROWS if iso != "-"},
    **{_normal(alias): iso for alias, iso in _ALIASES.items()},
}


def iso_from_fips(code: str) -> str | None:
    """The ISO 3166-1 alpha-2 code of a FIPS 10-4 code, None when there is none."""
    return FIPS_TO_ISO.get(code.strip().upper())


def iso_from_name(name: str) -> str | None:
    """The ISO code of an English country name ('Great Britain', 'The Netherlands')."""
    return NAME_TO_ISO.get(_normal(name))
