/*
 * data.c - the tables the sandbox draws realistic data from: countries
 * with their currencies and tax rates, cities with postal codes, time zones
 * and coordinates, first and last names and streets per locale, and a small
 * product catalog with variants and SKUs. Names are UTF-8 on purpose
 * (Müller, Tōkyō): connectors must carry them through unharmed.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "sandbox.h"

enum { L_EN, L_DE, L_FR, L_NL, L_JA, L_COUNT };

const struct sb_country sb_countries[] = {
	{ "US", "United States", "USD", 2, 700, 0, L_EN, "+1", "ATVPDKIKX0DER", "Amazon.com",
	  "State Tax" },
	{ "CA", "Canada", "CAD", 2, 1300, 0, L_EN, "+1", "A2EUQ1WTGCTBG2", "Amazon.ca", "HST" },
	{ "GB", "United Kingdom", "GBP", 2, 2000, 1, L_EN, "+44", "A1F83G8C2ARO7P",
	  "Amazon.co.uk", "VAT" },
	{ "DE", "Germany", "EUR", 2, 1900, 1, L_DE, "+49", "A1PA6795UKMFR9", "Amazon.de",
	  "MwSt" },
	{ "FR", "France", "EUR", 2, 2000, 1, L_FR, "+33", "A13V1IB3VIYZZH", "Amazon.fr", "TVA" },
	{ "NL", "Netherlands", "EUR", 2, 2100, 1, L_NL, "+31", "A1805IZSGTT6HS", "Amazon.nl",
	  "BTW" },
	{ "JP", "Japan", "JPY", 0, 1000, 1, L_JA, "+81", "A1VC38T7YXB528", "Amazon.co.jp",
	  "消費税" },
};
const int sb_ncountries = (int)(sizeof(sb_countries) / sizeof(sb_countries[0]));

const struct sb_city sb_cities[] = {
	{ "US", "New York", "New York", "NY", "10001", 40.7506, -73.9972, -300, 888 },
	{ "US", "Los Angeles", "California", "CA", "90012", 34.0614, -118.2385, -480, 950 },
	{ "US", "Chicago", "Illinois", "IL", "60601", 41.8864, -87.6186, -360, 1025 },
	{ "US", "Houston", "Texas", "TX", "77002", 29.7566, -95.3594, -360, 825 },
	{ "US", "Phoenix", "Arizona", "AZ", "85004", 33.4515, -112.0686, -420, 860 },
	{ "US", "Philadelphia", "Pennsylvania", "PA", "19103", 39.9526, -75.1740, -300, 800 },
	{ "US", "Seattle", "Washington", "WA", "98101", 47.6101, -122.3344, -480, 1025 },
	{ "US", "Denver", "Colorado", "CO", "80202", 39.7527, -104.9992, -420, 881 },
	{ "US", "Boston", "Massachusetts", "MA", "02108", 42.3588, -71.0638, -300, 625 },
	{ "US", "Atlanta", "Georgia", "GA", "30303", 33.7525, -84.3888, -300, 890 },
	{ "US", "Louisville", "Kentucky", "KY", "40202", 38.2542, -85.7594, -300, 600 },
	{ "US", "Portland", "Oregon", "OR", "97205", 45.5200, -122.6819, -480, 0 },
	{ "US", "Miami", "Florida", "FL", "33131", 25.7689, -80.1946, -300, 700 },
	{ "US", "Austin", "Texas", "TX", "78701", 30.2711, -97.7437, -360, 825 },
	{ "US", "Minneapolis", "Minnesota", "MN", "55401", 44.9847, -93.2700, -360, 903 },
	{ "CA", "Toronto", "Ontario", "ON", "M5V 2T6", 43.6426, -79.3871, -300, 1300 },
	{ "CA", "Vancouver", "British Columbia", "BC", "V6B 1A1", 49.2790, -123.1187, -480, 1200 },
	{ "CA", "Montréal", "Quebec", "QC", "H2Y 1C6", 45.5048, -73.5566, -300, 1498 },
	{ "CA", "Calgary", "Alberta", "AB", "T2P 1J9", 51.0478, -114.0593, -420, 500 },
	{ "CA", "Ottawa", "Ontario", "ON", "K1P 1J1", 45.4231, -75.6931, -300, 1300 },
	{ "CA", "Halifax", "Nova Scotia", "NS", "B3J 1S9", 44.6488, -63.5752, -240, 1500 },
	{ "GB", "London", "England", "ENG", "SW1A 1AA", 51.5014, -0.1419, 0, 0 },
	{ "GB", "Manchester", "England", "ENG", "M1 1AE", 53.4808, -2.2426, 0, 0 },
	{ "GB", "Birmingham", "England", "ENG", "B1 1BB", 52.4796, -1.9026, 0, 0 },
	{ "GB", "Leeds", "England", "ENG", "LS1 1UR", 53.7997, -1.5492, 0, 0 },
	{ "GB", "Glasgow", "Scotland", "SCT", "G1 1XQ", 55.8609, -4.2514, 0, 0 },
	{ "GB", "Bristol", "England", "ENG", "BS1 4DJ", 51.4545, -2.5879, 0, 0 },
	{ "GB", "Edinburgh", "Scotland", "SCT", "EH1 1YZ", 55.9486, -3.1999, 0, 0 },
	{ "DE", "Berlin", "Berlin", "BE", "10115", 52.5323, 13.3846, 60, 0 },
	{ "DE", "München", "Bayern", "BY", "80331", 48.1351, 11.5820, 60, 0 },
	{ "DE", "Hamburg", "Hamburg", "HH", "20095", 53.5511, 9.9937, 60, 0 },
	{ "DE", "Köln", "Nordrhein-Westfalen", "NW", "50667", 50.9375, 6.9603, 60, 0 },
	{ "DE", "Frankfurt am Main", "Hessen", "HE", "60311", 50.1109, 8.6821, 60, 0 },
	{ "DE", "Stuttgart", "Baden-Württemberg", "BW", "70173", 48.7758, 9.1829, 60, 0 },
	{ "DE", "Leipzig", "Sachsen", "SN", "04109", 51.3397, 12.3731, 60, 0 },
	{ "FR", "Paris", NULL, NULL, "75001", 48.8606, 2.3376, 60, 0 },
	{ "FR", "Lyon", NULL, NULL, "69001", 45.7640, 4.8357, 60, 0 },
	{ "FR", "Marseille", NULL, NULL, "13001", 43.2965, 5.3698, 60, 0 },
	{ "FR", "Toulouse", NULL, NULL, "31000", 43.6047, 1.4442, 60, 0 },
	{ "FR", "Bordeaux", NULL, NULL, "33000", 44.8378, -0.5792, 60, 0 },
	{ "FR", "Lille", NULL, NULL, "59000", 50.6292, 3.0573, 60, 0 },
	{ "NL", "Amsterdam", NULL, NULL, "1012 AB", 52.3731, 4.8922, 60, 0 },
	{ "NL", "Rotterdam", NULL, NULL, "3011 AD", 51.9225, 4.4792, 60, 0 },
	{ "NL", "Utrecht", NULL, NULL, "3511 AB", 52.0907, 5.1214, 60, 0 },
	{ "NL", "Den Haag", NULL, NULL, "2511 BT", 52.0705, 4.3007, 60, 0 },
	{ "NL", "Eindhoven", NULL, NULL, "5611 AB", 51.4416, 5.4697, 60, 0 },
	{ "JP", "千代田区", "Tōkyō", "JP-13", "100-0001", 35.6852, 139.7528, 540, 0 },
	{ "JP", "Osaka", "Ōsaka", "JP-27", "530-0001", 34.7025, 135.4959, 540, 0 },
	{ "JP", "Kyoto", "Kyōto", "JP-26", "600-8001", 35.0037, 135.7681, 540, 0 },
	{ "JP", "Yokohama", "Kanagawa", "JP-14", "220-0011", 35.4437, 139.6380, 540, 0 },
	{ "JP", "Sapporo", "Hokkaidō", "JP-01", "060-0001", 43.0621, 141.3544, 540, 0 },
	{ "JP", "Fukuoka", "Fukuoka", "JP-40", "810-0001", 33.5902, 130.4017, 540, 0 },
};
const int sb_ncities = (int)(sizeof(sb_cities) / sizeof(sb_cities[0]));

static const char *const first_en[] = {
	"James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
	"William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
	"Thomas", "Sarah", "Charles", "Karen", "Emily", "Daniel", "Olivia", "Liam", "Noah",
	"Emma", "Ava", "Sophia", "Lucas", "Mia", "Ethan", "Amelia", "Oliver", "Harper",
	"Zoë", "Chloé",
};
static const char *const last_en[] = {
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
	"Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas",
	"Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark",
	"Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker",
	"Adams", "Nelson", "O'Brien", "Nguyen", "Patel",
};
static const char *const first_de[] = {
	"Lukas", "Leon", "Finn", "Jonas", "Paul", "Felix", "Ben", "Elias", "Emma", "Mia",
	"Hannah", "Sophie", "Lena", "Marie", "Lea", "Anna", "Jürgen", "Sabine", "Klaus",
	"Ursula", "Stefan", "Katrin", "Jörg", "Björn",
};
static const char *const last_de[] = {
	"Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
	"Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
	"Schröder", "Neumann", "Schwarz", "Zimmermann", "Weiß", "Krüger",
};
static const char *const first_fr[] = {
	"Gabriel", "Léo", "Raphaël", "Louis", "Lucas", "Jules", "Hugo", "Emma", "Jade",
	"Louise", "Alice", "Chloé", "Lina", "Léa", "Manon", "Camille", "Théo", "Inès",
	"François", "Hélène",
};
static const char *const last_fr[] = {
	"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
	"Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
	"Bertrand", "Roux", "Fontaine", "Girard",
};
static const char *const first_nl[] = {
	"Daan", "Sem", "Lucas", "Levi", "Finn", "Milan", "Noah", "Emma", "Julia", "Mila",
	"Tess", "Sophie", "Zoë", "Sara", "Anna", "Bram", "Jesse", "Fenna",
};
static const char *const last_nl[] = {
	"de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
	"Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters",
	"Hendriks", "van Leeuwen",
};
static const char *const first_ja[] = {
	"Haruto", "Yuto", "Sota", "Yuki", "Hayato", "Riku", "Yui", "Aoi", "Hina", "Yuna",
	"Sakura", "Mei", "Kenji", "Hiroshi", "Akiko", "Naoko", "Takumi", "Emi", "陽翔", "結衣",
};
static const char *const last_ja[] = {
	"Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
	"Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto",
	"Inoue", "Kimura", "佐藤", "鈴木",
};
static const char *const street_en[] = {
	"Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Pine Street", "Elm Street",
	"Washington Avenue", "Lake Road", "Hill Street", "Park Avenue", "Chestnut Street",
	"Sunset Boulevard", "River Road", "Highland Avenue", "Church Street", "King Street",
	"High Street", "Station Road", "Victoria Road", "Green Lane",
};
static const char *const street_de[] = {
	"Hauptstraße", "Bahnhofstraße", "Gartenstraße", "Schulstraße", "Dorfstraße",
	"Bergstraße", "Lindenstraße", "Kirchstraße", "Goethestraße", "Schillerstraße",
};
static const char *const street_fr[] = {
	"rue de la Paix", "avenue des Champs-Élysées", "rue Victor Hugo",
	"boulevard Saint-Michel", "rue de la République", "place Bellecour", "rue Nationale",
};
static const char *const street_nl[] = {
	"Kerkstraat", "Dorpsstraat", "Schoolstraat", "Molenweg", "Stationsweg", "Prinsengracht",
	"Keizersgracht", "Hoofdstraat",
};
static const char *const street_ja[] = {
	"Chiyoda", "Shibuya", "Minato", "Chūō", "Shinjuku", "Nakagyō", "Kita",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct locale_tab {
	const char *const *first, *const *last, *const *street;
	size_t nfirst, nlast, nstreet;
};

static const struct locale_tab locales[L_COUNT] = {
	{ first_en, last_en, street_en, N(first_en), N(last_en), N(street_en) },
	{ first_de, last_de, street_de, N(first_de), N(last_de), N(street_de) },
	{ first_fr, last_fr, street_fr, N(first_fr), N(last_fr), N(street_fr) },
	{ first_nl, last_nl, street_nl, N(first_nl), N(last_nl), N(street_nl) },
	{ first_ja, last_ja, street_ja, N(first_ja), N(last_ja), N(street_ja) },
};

const struct sb_product sb_products[] = {
	{ "Classic Cotton T-Shirt", "Apparel", "Northwind Apparel", "TEE", 1999, 180,
	  SB_VAR_SIZE_COLOR },
	{ "Merino Wool Sweater", "Apparel", "Northwind Apparel", "SWT", 8900, 420,
	  SB_VAR_SIZE_COLOR },
	{ "Waterproof Rain Jacket", "Outerwear", "Cascade Outfitters", "JKT", 12900, 650,
	  SB_VAR_SIZE_COLOR },
	{ "Slim Fit Chinos", "Apparel", "Northwind Apparel", "CHN", 5450, 480, SB_VAR_SIZE },
	{ "Trail Running Shoes", "Footwear", "Stride Athletics", "RUN", 11995, 780, SB_VAR_SHOE },
	{ "Leather Belt", "Accessories", "Saddle & Co", "BLT", 3500, 220, SB_VAR_SIZE },
	{ "Canvas Tote Bag", "Bags", "Harbor Goods", "TOT", 2400, 300, SB_VAR_COLOR },
	{ "Stainless Steel Water Bottle 750ml", "Kitchen", "Harbor Goods", "BTL", 2995, 410,
	  SB_VAR_COLOR },
	{ "Ceramic Pour-Over Coffee Dripper", "Kitchen", "Kiln & Co", "DRP", 3200, 520,
	  SB_VAR_COLOR },
	{ "Single Origin Coffee Beans 1kg", "Grocery", "Highland Roasters", "COF", 3890, 1000,
	  SB_VAR_NONE },
	{ "Organic Green Tea 100g", "Grocery", "Leaf & Cup", "TEA", 1250, 120, SB_VAR_NONE },
	{ "Wireless Earbuds", "Electronics", "Soundwave", "EAR", 7999, 60, SB_VAR_COLOR },
	{ "USB-C Charging Cable 2m", "Electronics", "Voltline", "USB", 1499, 80, SB_VAR_NONE },
	{ "Mechanical Keyboard", "Electronics", "Keystone Labs", "KBD", 13900, 980,
	  SB_VAR_NONE },
	{ "Bluetooth Speaker", "Electronics", "Soundwave", "SPK", 5999, 540, SB_VAR_COLOR },
	{ "Yoga Mat 6mm", "Sports", "Stride Athletics", "YGA", 4200, 1800, SB_VAR_COLOR },
	{ "Hiking Backpack 30L", "Outdoor", "Cascade Outfitters", "BPK", 9900, 1100,
	  SB_VAR_COLOR },
	{ "Insulated Camping Mug", "Outdoor", "Cascade Outfitters", "MUG", 2200, 350,
	  SB_VAR_COLOR },
	{ "Scented Soy Candle", "Home", "Ember Home", "CND", 2600, 400, SB_VAR_SCENT },
	{ "Linen Throw Pillow Cover", "Home", "Ember Home", "PLW", 3100, 250, SB_VAR_COLOR },
	{ "Cast Iron Skillet 10\"", "Kitchen", "Kiln & Co", "SKL", 4495, 2300, SB_VAR_NONE },
	{ "Bamboo Cutting Board", "Kitchen", "Harbor Goods", "CUT", 2850, 900, SB_VAR_NONE },
	{ "Hardcover Notebook A5", "Stationery", "Paper Trail", "NTB", 1600, 350, SB_VAR_COLOR },
	{ "Fountain Pen", "Stationery", "Paper Trail", "PEN", 4800, 40, SB_VAR_COLOR },
	{ "Polarized Sunglasses", "Accessories", "Saddle & Co", "SUN", 6500, 30, SB_VAR_COLOR },
	{ "Wool Beanie", "Accessories", "Northwind Apparel", "BNE", 2450, 90, SB_VAR_COLOR },
	{ "Kids' Rain Boots", "Footwear", "Stride Athletics", "KRB", 3400, 600, SB_VAR_SHOE },
	{ "Reflective Dog Leash 1.5m", "Pets", "Happy Tails", "LSH", 1900, 200, SB_VAR_COLOR },
	{ "Terracotta Plant Pot 20cm", "Garden", "Green Thumb", "POT", 1800, 1500, SB_VAR_NONE },
	{ "LED Desk Lamp", "Home", "Voltline", "LMP", 5400, 1300, SB_VAR_COLOR },
};
const int sb_nproducts = (int)(sizeof(sb_products) / sizeof(sb_products[0]));

static const char *const sizes[] = { "S", "M", "L", "XL" };
static const char *const colors[] = { "Black", "White", "Navy", "Forest Green", "Red" };
static const char *const color_codes[] = { "BLK", "WHT", "NVY", "GRN", "RED" };
static const char *const shoes[] = { "7", "8", "9", "10", "11" };
static const char *const scents[] = { "Lavender", "Cedarwood", "Vanilla" };
static const char *const scent_codes[] = { "LAV", "CED", "VAN" };

int sb_country_find(const char *code)
{
	for (int i = 0; i < sb_ncountries; i++)
		if (strcmp(sb_countries[i].code, code) == 0)
			return i;
	return -1;
}

int sb_city_pick(struct sb_rng *r, const char *country)
{
	int n = 0;
	for (int i = 0; i < sb_ncities; i++)
		if (strcmp(sb_cities[i].country, country) == 0)
			n++;
	if (n == 0)
		return 0;
	int k = (int)sb_rng_below(r, (uint64_t)n);
	for (int i = 0; i < sb_ncities; i++)
		if (strcmp(sb_cities[i].country, country) == 0 && k-- == 0)
			return i;
	return 0;
}

static const struct locale_tab *loc(int locale)
{
	return &locales[(locale >= 0 && locale < L_COUNT) ? locale : 0];
}

const char *sb_first_name(struct sb_rng *r, int locale)
{
	const struct locale_tab *l = loc(locale);
	return l->first[sb_rng_below(r, l->nfirst)];
}

const char *sb_last_name(struct sb_rng *r, int locale)
{
	const struct locale_tab *l = loc(locale);
	return l->last[sb_rng_below(r, l->nlast)];
}

const char *sb_street(struct sb_rng *r, int locale)
{
	const struct locale_tab *l = loc(locale);
	return l->street[sb_rng_below(r, l->nstreet)];
}

int sb_variant_count(int kind)
{
	switch (kind) {
	case SB_VAR_SIZE:
		return (int)N(sizes);
	case SB_VAR_COLOR:
		return (int)N(colors);
	case SB_VAR_SIZE_COLOR:
		return (int)N(sizes) * 3;
	case SB_VAR_SHOE:
		return (int)N(shoes);
	case SB_VAR_SCENT:
		return (int)N(scents);
	default:
		return 1;
	}
}

const char *sb_variant_title(int kind, int v, char *buf, size_t size)
{
	switch (kind) {
	case SB_VAR_SIZE:
		snprintf(buf, size, "%s", sizes[v % (int)N(sizes)]);
		return buf;
	case SB_VAR_COLOR:
		snprintf(buf, size, "%s", colors[v % (int)N(colors)]);
		return buf;
	case SB_VAR_SIZE_COLOR:
		snprintf(buf, size, "%s / %s", sizes[(v / 3) % (int)N(sizes)], colors[v % 3]);
		return buf;
	case SB_VAR_SHOE:
		snprintf(buf, size, "US %s", shoes[v % (int)N(shoes)]);
		return buf;
	case SB_VAR_SCENT:
		snprintf(buf, size, "%s", scents[v % (int)N(scents)]);
		return buf;
	default:
		return NULL;
	}
}

const char *sb_variant_code(int kind, int v, char *buf, size_t size)
{
	switch (kind) {
	case SB_VAR_SIZE:
		snprintf(buf, size, "%s", sizes[v % (int)N(sizes)]);
		break;
	case SB_VAR_COLOR:
		snprintf(buf, size, "%s", color_codes[v % (int)N(colors)]);
		break;
	case SB_VAR_SIZE_COLOR:
		snprintf(buf, size, "%s-%s", color_codes[v % 3], sizes[(v / 3) % (int)N(sizes)]);
		break;
	case SB_VAR_SHOE:
		snprintf(buf, size, "%s", shoes[v % (int)N(shoes)]);
		break;
	case SB_VAR_SCENT:
		snprintf(buf, size, "%s", scent_codes[v % (int)N(scents)]);
		break;
	default:
		buf[0] = '\0';
		break;
	}
	return buf;
}

int64_t sb_product_price(int product, int variant, const char *currency)
{
	const struct sb_product *p = &sb_products[product % sb_nproducts];
	int64_t cents = p->usd_cents;
	/* larger sizes cost a little more */
	if (p->variants == SB_VAR_SIZE_COLOR && variant / 3 == 3)
		cents += 300;
	if (strcmp(currency, "JPY") == 0) {
		int64_t yen = cents * 150 / 100;
		yen = (yen + 50) / 100 * 100 - 20; /* 2980 */
		return yen < 80 ? 80 : yen;
	}
	int64_t rate_pm = 1000; /* per mille of USD */
	if (strcmp(currency, "CAD") == 0)
		rate_pm = 1360;
	else if (strcmp(currency, "GBP") == 0)
		rate_pm = 790;
	else if (strcmp(currency, "EUR") == 0)
		rate_pm = 920;
	int64_t v = cents * rate_pm / 1000;
	int64_t units = (v + 50) / 100;
	switch (product % 3) {
	case 0:
		return units * 100 - 1;  /* x.99 */
	case 1:
		return units * 100 - 5;  /* x.95 */
	default:
		return units * 100;      /* x.00 */
	}
}

struct fold {
	const char *from, *to;
};

void sb_ascii_fold(const char *in, char *out, size_t size)
{
	static const struct fold folds[] = {
		{ "ä", "ae" }, { "ö", "oe" }, { "ü", "ue" }, { "ß", "ss" }, { "é", "e" },
		{ "è", "e" },  { "ê", "e" },  { "ë", "e" },  { "ï", "i" },  { "ç", "c" },
		{ "ō", "o" },  { "ū", "u" },  { "à", "a" },  { "â", "a" },  { "ô", "o" },
		{ "É", "e" },  { "Ö", "oe" }, { "Ü", "ue" }, { "Ä", "ae" },
	};
	size_t o = 0;
	if (size == 0)
		return;
	while (*in && o + 3 < size) {
		unsigned char c = (unsigned char)*in;
		if (c < 0x80) {
			if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
				out[o++] = (char)c;
			else if (c >= 'A' && c <= 'Z')
				out[o++] = (char)(c - 'A' + 'a');
			in++;
			continue;
		}
		int matched = 0;
		for (size_t i = 0; i < N(folds); i++) {
			size_t fl = strlen(folds[i].from);
			if (strncmp(in, folds[i].from, fl) == 0) {
				for (const char *t = folds[i].to; *t && o + 1 < size; t++)
					out[o++] = *t;
				in += fl;
				matched = 1;
				break;
			}
		}
		if (!matched) {
			/* skip one UTF-8 sequence (e.g. kanji) */
			in++;
			while (((unsigned char)*in & 0xc0) == 0x80)
				in++;
		}
	}
	out[o] = '\0';
}
