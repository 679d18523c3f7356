/*
 * status_map.c - each carrier's official tracking codes mapped to the
 * canonical shipment status vocabulary (sdk/schema/shipment_status.json).
 *
 * One table per code family, with the carrier's own description of each
 * code and where the list comes from. docs/carriers.md presents the same
 * tables with the reasoning; a unit test keeps the two in step. Codes that
 * are not listed map to "unknown" and are logged by carrier_map() so the
 * host counts them; nothing is guessed from free text. CARRIER_DEFER marks
 * informational codes (requests, confirmations, photos) whose status is the
 * one of the companion code the carrier sends for the same scan.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "carrier.h"

#define PRE CARRIER_PRE_TRANSIT
#define TRN CARRIER_IN_TRANSIT
#define OFD CARRIER_OUT_FOR_DELIVERY
#define DLV CARRIER_DELIVERED
#define AFP CARRIER_AVAILABLE_FOR_PICKUP
#define DFL CARRIER_DELIVERY_FAILED
#define EXC CARRIER_EXCEPTION
#define RTS CARRIER_RETURN_TO_SENDER
#define CAN CARRIER_CANCELLED
#define UNK CARRIER_UNKNOWN
#define DEF CARRIER_DEFER

static const char *const status_names[] = {
	[CARRIER_UNKNOWN] = "unknown",
	[CARRIER_PRE_TRANSIT] = "pre_transit",
	[CARRIER_IN_TRANSIT] = "in_transit",
	[CARRIER_OUT_FOR_DELIVERY] = "out_for_delivery",
	[CARRIER_DELIVERED] = "delivered",
	[CARRIER_AVAILABLE_FOR_PICKUP] = "available_for_pickup",
	[CARRIER_DELIVERY_FAILED] = "delivery_failed",
	[CARRIER_EXCEPTION] = "exception",
	[CARRIER_RETURN_TO_SENDER] = "return_to_sender",
	[CARRIER_CANCELLED] = "cancelled",
	[CARRIER_DEFER] = "defer",
};

/*
 * carrier_status_name - the canonical string of a status. Unknown enum
 * values (never produced) give "unknown".
 */
const char *carrier_status_name(enum carrier_status status)
{
	if ((unsigned)status >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown";
	return status_names[status];
}

/*
 * UPS Track API, activity[].status.statusCode and currentStatus.statusCode:
 * the "Status/Description Codes" table of the UPS Tracking appendix,
 * returned zero-padded to three digits ("003"). Looked up without the
 * leading zeros.
 */
static const struct carrier_code_map ups_status_rows[] = {
	{"0", DEF, "Status Not Available"},
	{"3", PRE, "Shipment Ready for UPS"},
	{"5", TRN, "On the Way"},
	{"6", OFD, "Out for Delivery"},
	{"7", CAN, "Shipment Information Voided"},
	{"10", TRN, "On the Way"},
	{"11", DLV, "Delivered"},
	{"12", TRN, "Clearance in Progress"},
	{"13", EXC, "Exception"},
	{"14", TRN, "Clearance Completed"},
	{"16", TRN, "In Warehouse"},
	{"17", AFP, "Held for Customer Pickup"},
	{"18", DEF, "Delivery Change Requested: Hold for Pickup"},
	{"19", DEF, "Held for Future Delivery"},
	{"20", DEF, "Held for Future Delivery Requested"},
	{"21", OFD, "Out for Delivery"},
	{"22", DFL, "First Attempt Made"},
	{"23", DFL, "Second Delivery Attempted"},
	{"24", DFL, "Final Attempt Made"},
	{"25", TRN, "On the Way"},
	{"26", DLV, "Delivered by Local Post Office"},
	{"27", DEF, "Delivery Address Change Requested"},
	{"28", DEF, "Delivery Address Changed"},
	{"29", EXC, "Exception: Action Required"},
	{"30", EXC, "Local Post Office Exception"},
	{"32", EXC, "Adverse Weather May Cause Delay"},
	{"33", DEF, "Return to Sender Requested"},
	{"34", RTS, "Returned to Sender"},
	{"35", RTS, "Returning to Sender"},
	{"36", RTS, "Returning to Sender: In Transit"},
	{"37", OFD, "Out for Delivery"},
	{"38", TRN, "Picked Up by UPS"},
	{"39", TRN, "On the Way"},
	{"40", AFP, "Ready for Customer Pickup"},
	{"41", DEF, "Service Upgrade Requested"},
	{"42", DEF, "Service Upgraded"},
	{"43", DEF, "Voided Pickup"},
	{"44", PRE, "On the Way to UPS"},
	{"45", PRE, "On the Way to UPS"},
	{"46", EXC, "Delay"},
	{"47", TRN, "On the Way"},
	{"48", EXC, "Delay"},
	{"49", EXC, "Delay: Action Required"},
	{"50", EXC, "Address Information Required"},
	{"51", EXC, "Delay: Emergency Situation or Severe Weather"},
	{"52", EXC, "Delay: Severe Weather"},
	{"53", EXC, "Delay: Severe Weather"},
	{"54", DEF, "Delivery Change Requested"},
	{"55", EXC, "Rescheduled Delivery"},
	{"56", DEF, "Service Upgrade Requested"},
	{"57", TRN, "On the Way to a Local UPS Access Point"},
	{"58", EXC, "Clearance Information Required"},
	{"59", EXC, "Damage Reported"},
	{"60", DFL, "Delivery Attempted"},
	{"61", DFL, "Delivery Attempted: Adult Signature Required"},
	{"62", DFL, "Delivery Attempted: Funds Required"},
	{"63", DEF, "Delivery Change Completed"},
	{"64", DFL, "Delivery Refused"},
	{"65", EXC, "Pickup Attempted"},
	{"66", DFL, "Post Office Delivery Attempted"},
	{"67", RTS, "Returned to Sender by Post Office"},
	{"68", EXC, "Sent to Lost and Found"},
	{"69", DFL, "Unable to Deliver"},
	{"70", TRN, "Package not at UPS Access Point yet"},
	{"71", TRN, "Preparing for Delivery"},
	{"72", OFD, "Loaded on Delivery Vehicle"},
	{"73", TRN, "In Transit to UPS Delivery Partner"},
	{"74", TRN, "UPS Delivery Partner has Shipment"},
	{"75", TRN, "Scheduled for Delivery"},
	{"76", EXC, "UPS Delivery Partner Exception"},
	{"77", PRE, "Scheduled for Pickup Today"},
	{"78", OFD, "Your Driver is Arriving Soon!"},
	{"79", PRE, "Order Processed: In Transit to UPS"},
	{"80", PRE, "Order Processed: Ready for UPS"},
	{"81", RTS, "Returned - Damage Reported"},
	{"82", DEF, "Delivery Instructions Received"},
	{"83", DEF, "Held"},
	{"84", TRN, "Cleared"},
	{"85", EXC, "Held for COD Payment"},
	{"86", EXC, "Delay"},
	{"87", TRN, "On the Way"},
	{"88", DEF, "Test"},
	{"89", OFD, "Out for Delivery"},
	{"90", EXC, "Delay"},
	{"91", OFD, "Out for Delivery"},
	{"92", TRN, "Customs Clearance in Progress"},
	{"93", EXC, "Premier Recovery In Progress"},
	{"94", DEF, "Premier Recovery Completed"},
	{"95", DEF, "Additional Attempt Requested"},
	{"96", DEF, "Address Change Confirmed"},
	{"97", DEF, "Address Change Requested"},
	{"98", DEF, "Deliver to Original Address Requested"},
	{"99", DEF, "Deliver to Original Address Confirmed"},
	{"100", DEF, "Hold at UPS Access Point Confirmed"},
	{"101", DEF, "Hold at UPS Access Point Requested"},
	{"102", DEF, "Hold for Courier Requested"},
	{"103", DEF, "Hold for Courier Confirmed"},
	{"104", DEF, "Hold for Instructions Confirmed"},
	{"105", DEF, "Hold for Instructions Requested"},
	{"106", DEF, "Hold for Pickup Confirmed"},
	{"107", DEF, "Hold for Pickup Requested"},
	{"108", DEF, "Hold for Pickup Today Confirmed"},
	{"109", DEF, "Hold for Pickup Today Requested"},
	{"110", DEF, "Refrigeration Confirmed"},
	{"111", DEF, "Refrigeration Requested"},
	{"112", DEF, "Re-Ice Confirmed"},
	{"113", DEF, "Re-Ice Requested"},
	{"114", DEF, "Request Canceled"},
	{"115", DEF, "Reschedule Delivery Confirmed"},
	{"116", DEF, "Reschedule Delivery Requested"},
	{"117", DEF, "Return by Saturday Confirmed"},
	{"118", RTS, "Return to Sender Confirmed"},
	{"119", DEF, "Return to Sender Requested"},
	{"120", DEF, "Saturday Delivery Confirmed"},
	{"121", DEF, "Saturday Delivery Requested"},
	{"122", DEF, "Upgrade Confirmed"},
	{"123", TRN, "Pending Release From Non-UPS Broker"},
	{"124", EXC, "Clearance Information Needed"},
	{"125", EXC, "Clearance Information Needed"},
	{"126", TRN, "Pending Government Agency Release"},
	{"127", DEF, "Investigation Closed"},
	{"128", DEF, "Investigation Canceled"},
	{"129", EXC, "Investigation Opened"},
	{"130", EXC, "Claim in Progress"},
	{"131", EXC, "Final Pickup Attempted"},
	{"132", EXC, "Airport Security Delay"},
	{"133", DEF, "Return Label Left With Customer"},
	{"134", TRN, "Cleared Import Customs"},
	{"135", EXC, "Second Pickup Attempted"},
	{"136", DEF, "Delivery Rescheduled for Saturday"},
	{"137", TRN, "Transferred to UPS Delivery Partner"},
	{"138", TRN, "Awaiting Scheduled Departure"},
	{"139", EXC, "Security Access Required"},
	{"140", EXC, "Claim Paid - Claim Payment Has Been Processed."},
	{"141", EXC, "Incomplete Documentation Received"},
	{"142", DEF, "Claim Voided"},
	{"143", DLV, "Delivered to Agent"},
	{"144", AFP, "Delivered to Post Office for Pickup"},
	{"145", DFL, "Delivery Attempted"},
	{"146", OFD, "Out for Delivery"},
	{"147", EXC, "Seized by Law Enforcement, No Longer in UPS possession"},
	{"148", DEF, "Package Information Unavailable"},
	{"149", EXC, "Prohibited Contents, Package Destroyed No Longer in UPS possession"},
	{"153", DEF, "Updated Delivery Time"},
	{"154", DEF, "Updated Delivery Date"},
	{"155", DEF, "Delivery Photo"},
	{"156", DEF, "Commercial Inside Release"},
	{"157", PRE, "Shipment Ready for UPS"},
	{"158", TRN, "On the Way"},
	{"159", TRN, "On the Way"},
	{"160", TRN, "We Have Your Package"},
	{"161", AFP, "Delivered to UPS Access Point"},
	{"162", OFD, "Out for Delivery"},
	{"163", DEF, "Package Information Unavailable"},
	{"164", TRN, "On the Way"},
	{"165", TRN, "On the Way"},
	{"166", PRE, "Shipment Ready for Roadie"},
	{"167", TRN, "Dropped off at UPS Store by Customer"},
	{"168", TRN, "Dropped off at Retail Location by Customer"},
	{"169", TRN, "Dropped off at a UPS Access Point by Customer"},
	{NULL, UNK, NULL},
};

const struct carrier_table carrier_ups_status_codes = {
	"ups_status_codes",
	"UPS Tracking appendix, Status/Description Codes (fixtures/ups/"
	"ups_vendor_Tracking-status-description-codes.html)",
	0, ups_status_rows,
};

/*
 * UPS activity[].status.type: the "Package Activity Types" table, plus P,
 * O and RS from the UPS Tracking developer guide's activity status types.
 */
static const struct carrier_code_map ups_type_rows[] = {
	{"D", DLV, "Delivered"},
	{"I", TRN, "In Transit, Out for Delivery"},
	{"M", PRE, "Billing Information Received"},
	{"MV", CAN, "Billing Information Voided"},
	{"X", EXC, "Exception"},
	{"DO", TRN, "Delivered Origin CFS (Freight Only)"},
	{"DD", TRN, "Delivered Destination CFS (Freight Only)"},
	{"W", TRN, "Warehousing (Freight Only)"},
	{"NA", UNK, "Not Available"},
	{"U", UNK, "Updates (Track Alert API Only)"},
	{"P", TRN, "Pickup"},
	{"O", OFD, "Out for Delivery"},
	{"RS", RTS, "Returned to Shipper"},
	{NULL, UNK, NULL},
};

const struct carrier_table carrier_ups_activity_types = {
	"ups_activity_types",
	"UPS Tracking appendix, Package Activity Types (fixtures/ups/"
	"ups_vendor_Tracking-package-activity-types.html); P, O, RS from the UPS "
	"Tracking developer guide",
	0, ups_type_rows,
};

/*
 * FedEx Track API scanEvents[].eventType, derivedStatusCode and
 * latestStatusDetail.code / derivedCode: the "Tracking Status Codes" table
 * (Movement and Regulatory columns). The Possession column (CA Carrier, RC
 * Recipient, SH Shipper...) is a different code family, never an event
 * type, and is not listed.
 */
static const struct carrier_code_map fedex_rows[] = {
	{"AA", TRN, "At Airport"},
	{"AC", TRN, "At Canada Post facility"},
	{"AD", OFD, "At Delivery"},
	{"AF", TRN, "At local FedEx Facility"},
	{"AO", TRN, "Shipment arriving On-time"},
	{"AP", PRE, "At Pickup"},
	{"AR", TRN, "Arrived at FedEx location"},
	{"AX", TRN, "At USPS facility"},
	{"CA", CAN, "Shipment Cancelled"},
	{"CC", TRN, "Cleared Customs"},
	{"CD", EXC, "Clearance Delay"},
	{"CH", DEF, "Location Changed"},
	{"CP", TRN, "Clearance in Progress"},
	{"DD", EXC, "Delivery Delay"},
	{"DE", DFL, "Delivery Exception"},
	{"DL", DLV, "Delivered"},
	{"DP", TRN, "Departed"},
	{"DR", PRE, "Vehicle furnished but not used"},
	{"DS", PRE, "Vehicle Dispatched"},
	{"DY", EXC, "Delay"},
	{"EA", TRN, "Enroute to Airport / Export Approved"},
	{"ED", OFD, "Enroute to Delivery"},
	{"EO", TRN, "Enroute to Origin Airport"},
	{"EP", PRE, "Enroute to Pickup"},
	{"FD", TRN, "At FedEx Destination"},
	{"HL", AFP, "Hold at Location"},
	{"HP", AFP, "Ready for Recipient Pickup"},
	{"IT", TRN, "In Transit"},
	{"IX", TRN, "In transit (see Details)"},
	{"LO", TRN, "Left Origin"},
	{"LP", DEF, "Return label link cancelled by shipment originator"},
	{"OC", PRE, "Order Created"},
	{"OD", OFD, "Out for Delivery"},
	{"OF", TRN, "At FedEx origin facility"},
	{"OW", TRN, "On the way"},
	{"OX", TRN, "Shipment information sent to USPS"},
	{"PD", EXC, "Pickup Delay"},
	{"PF", TRN, "Plane in Flight"},
	{"PL", TRN, "Plane Landed"},
	{"PM", TRN, "In Progress"},
	{"PU", TRN, "Picked Up"},
	{"PX", TRN, "Picked up (see Details)"},
	{"RC", DEF, "CDO Cancelled"},
	{"RD", DEF, "Return label link expired"},
	{"RG", DEF, "Return label link expiring soon"},
	{"RM", DEF, "CDO Modified"},
	{"RP", DEF, "Return label link emailed to return sender"},
	{"RR", DEF, "CDO requested"},
	{"RS", RTS, "Return to Shipper"},
	{"SE", EXC, "Shipment Exception"},
	{"SF", TRN, "At Sort Facility"},
	{"SP", DEF, "Split Status"},
	{"TR", TRN, "Transfer"},
	{NULL, UNK, NULL},
};

const struct carrier_table carrier_fedex_event_codes = {
	"fedex_event_codes",
	"FedEx Track API, Tracking Status Codes (fixtures/fedex/"
	"fedex_vendor_Tracking-Status-Codes.html)",
	1, fedex_rows,
};

/*
 * USPS Tracking v3 trackingEvents[].eventCode: scan event codes of USPS
 * Publication 199 (Appendix G-4, domestic scan events) as published with
 * the Track & Confirm API, and the codes of USPS's own Tracking v3 response
 * example (A1, T1, TL, GX with their event texts).
 */
static const struct carrier_code_map usps_event_rows[] = {
	{"01", DLV, "Delivered"},
	{"02", DFL, "Attempted / Notice Left"},
	{"03", TRN, "Accept or Pickup (USPS in possession of item)"},
	{"04", DFL, "Refused"},
	{"05", DFL, "Undeliverable as Addressed"},
	{"06", TRN, "Forwarded"},
	{"07", TRN, "Arrival at Unit (Arrived at Post Office)"},
	{"08", EXC, "Missent"},
	{"09", RTS, "Return to Sender"},
	{"10", TRN, "Processed (Arrived at USPS Regional Origin Facility)"},
	{"11", EXC, "Dead Letter"},
	{"14", TRN, "Arrival at Pickup Point"},
	{"15", EXC, "Mis-shipped"},
	{"16", AFP, "Available for Pickup"},
	{"17", DLV, "Picked Up By Agent"},
	{"19", TRN, "DC eVS Arrive"},
	{"21", RTS, "Return to Sender: No Such Number"},
	{"22", RTS, "Return to Sender: Insufficient Address"},
	{"23", RTS, "Return to Sender: Moved, Left No Address"},
	{"24", RTS, "Return to Sender: Forward Expired"},
	{"25", RTS, "Return to Sender: Addressee Unknown"},
	{"26", RTS, "Return to Sender: Vacant"},
	{"27", RTS, "Return to Sender: Unclaimed"},
	{"28", RTS, "Return to Sender: Deceased"},
	{"29", RTS, "Return to Sender: Other"},
	{"30", DFL, "Delivery Attempted - No Access to Delivery Location"},
	{"31", RTS, "Return to Sender: Not Picked Up"},
	{"41", TRN, "Received at Opening Unit"},
	{"42", TRN, "USPS Handoff to Shipping Partner"},
	{"43", DLV, "Picked Up"},
	{"44", RTS, "Customer Recall"},
	{"51", DFL, "Business Closed"},
	{"52", DFL, "Notice Left"},
	{"53", DFL, "Receptacle Blocked"},
	{"54", DFL, "Receptacle Full / Item Oversized"},
	{"55", DFL, "No Secure Location Available"},
	{"56", DFL, "No Authorized Recipient Available"},
	{"71", EXC, "Rescheduled to Next Delivery Day"},
	{"80", TRN, "Picked Up by Shipping Partner"},
	{"81", TRN, "Arrived Shipping Partner Facility"},
	{"82", TRN, "Departed Shipping Partner Facility"},
	{"A1", TRN, "Arrived at USPS Regional Facility"},
	{"DX", EXC, "Delivery Status Not Updated"},
	{"EF", TRN, "Departed Sort Facility"},
	{"GX", PRE, "Shipping Label Created, USPS Awaiting Item"},
	{"MA", PRE, "Manifest Acknowledgement (Pre-Shipment Info Sent to USPS)"},
	{"OF", OFD, "Out for Delivery"},
	{"PA", TRN, "Passive Acceptance (Shipment Acceptance)"},
	{"PC", TRN, "Sorting / Processing Complete"},
	{"SF", TRN, "Departed Post Office"},
	{"T1", TRN, "Departed USPS Regional Facility"},
	{"TL", TRN, "In Transit to Next Facility"},
	{"TM", PRE, "Truck Manifest (Shipment Received, Package Acceptance Pending)"},
	{NULL, UNK, NULL},
};

const struct carrier_table carrier_usps_event_codes = {
	"usps_event_codes",
	"USPS Publication 199 Appendix G-4 scan event codes (as listed for the "
	"Track & Confirm API) and the USPS Tracking v3 response example",
	1, usps_event_rows,
};

/*
 * USPS Tracking v3 statusCategory: the status categories USPS Tracking
 * shows for an item. Used only for the record status when the latest event
 * maps to nothing.
 */
static const struct carrier_code_map usps_category_rows[] = {
	{"Pre-Shipment", PRE, "Label created, USPS awaiting item"},
	{"Accepted", TRN, "USPS in possession of the item"},
	{"In Transit", TRN, "Moving through the USPS network"},
	{"Out for Delivery", OFD, "Out for delivery"},
	{"Delivered", DLV, "Delivered"},
	{"Available for Pickup", AFP, "Available for pickup"},
	{"Delivery Attempt", DFL, "Delivery attempted"},
	{"Alert", EXC, "Alert (an exception affects the item)"},
	{"Return to Sender", RTS, "Returning to the sender"},
	{NULL, UNK, NULL},
};

const struct carrier_table carrier_usps_categories = {
	"usps_categories",
	"USPS Tracking status categories (statusCategory, Publication 199 "
	"Appendix G-4/G-5 groupings)",
	1, usps_category_rows,
};

/* DHL Shipment Tracking - Unified, status.statusCode / events[].statusCode. */
static const struct carrier_code_map dhl_rows[] = {
	{"pre-transit", PRE, "The shipment is registered, not yet handed over to DHL"},
	{"transit", TRN, "The shipment is in transit"},
	{"delivered", DLV, "The shipment is delivered"},
	{"failure", DFL, "The delivery of the shipment failed"},
	{"unknown", UNK, "Status unknown"},
	{NULL, UNK, NULL},
};

const struct carrier_table carrier_dhl_status_codes = {
	"dhl_status_codes",
	"DHL Shipment Tracking - Unified API reference, statusCode enumeration",
	1, dhl_rows,
};

const struct carrier_table *const carrier_tables[] = {
	&carrier_ups_status_codes, &carrier_ups_activity_types, &carrier_fedex_event_codes,
	&carrier_usps_event_codes, &carrier_usps_categories,   &carrier_dhl_status_codes,
	NULL,
};

/*
 * carrier_table_find - exact (or case-insensitive, per table) lookup.
 * Returns 1 with *status set, or 0.
 */
int carrier_table_find(const struct carrier_table *table, const char *code,
		       enum carrier_status *status)
{
	const struct carrier_code_map *row;

	if (!code || !*code)
		return 0;
	for (row = table->rows; row->code; row++) {
		int same = table->nocase ? strcasecmp(row->code, code) == 0
					 : strcmp(row->code, code) == 0;
		if (same) {
			*status = row->status;
			return 1;
		}
	}
	return 0;
}
