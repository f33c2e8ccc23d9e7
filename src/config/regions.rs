//! Azure regions per cloud, embedded, so a location that does not exist is refused before
//! anything is created. A cloud gains regions over time: `provider.aks.cloud.extraLocations`
//! names regions this list does not know yet.

use super::{AksConfig, cut};

/// Regions of the public cloud (`AzureCloud`).
const AZURE_CLOUD: &[&str] = &[
    "australiacentral",
    "australiacentral2",
    "australiaeast",
    "australiasoutheast",
    "austriaeast",
    "belgiumcentral",
    "brazilsouth",
    "brazilsoutheast",
    "canadacentral",
    "canadaeast",
    "centralindia",
    "centralus",
    "chilecentral",
    "denmarkeast",
    "eastasia",
    "eastus",
    "eastus2",
    "francecentral",
    "francesouth",
    "germanynorth",
    "germanywestcentral",
    "indonesiacentral",
    "israelcentral",
    "italynorth",
    "japaneast",
    "japanwest",
    "jioindiacentral",
    "jioindiawest",
    "koreacentral",
    "koreasouth",
    "malaysiawest",
    "mexicocentral",
    "newzealandnorth",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "norwaywest",
    "polandcentral",
    "qatarcentral",
    "southafricanorth",
    "southafricawest",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "swedensouth",
    "switzerlandnorth",
    "switzerlandwest",
    "uaecentral",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westindia",
    "westus",
    "westus2",
    "westus3",
];

/// Regions of `AzureChinaCloud`.
const AZURE_CHINA: &[&str] = &[
    "chinaeast",
    "chinaeast2",
    "chinaeast3",
    "chinanorth",
    "chinanorth2",
    "chinanorth3",
];

/// Regions of `AzureUSGovernment`.
const AZURE_US_GOVERNMENT: &[&str] = &[
    "usdodcentral",
    "usdodeast",
    "usgovarizona",
    "usgovtexas",
    "usgovvirginia",
];

/// `provider.aks.location` checked against the regions of the chosen cloud. A `Custom` cloud
/// has no list. Returns the field and the message.
pub(super) fn unknown_location(aks: &AksConfig) -> Option<(String, String)> {
    let cloud = &aks.cloud;
    let known: &[&str] = match cloud.name.to_ascii_lowercase().as_str() {
        "azurecloud" => AZURE_CLOUD,
        "azurechinacloud" => AZURE_CHINA,
        "azureusgovernment" => AZURE_US_GOVERNMENT,
        _ => return None,
    };
    let location = aks.location.as_str();
    if known.contains(&location) || cloud.extra_locations.iter().any(|l| l == location) {
        return None;
    }
    Some((
        "provider.aks.location".into(),
        format!(
            "{:?} is not a region of {} that ephemera knows; if it is new, add it to \
             provider.aks.cloud.extraLocations",
            cut(location, 40),
            cut(&cloud.name, 40)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_lowercase_and_without_duplicates() {
        for list in [AZURE_CLOUD, AZURE_CHINA, AZURE_US_GOVERNMENT] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
            assert!(list.iter().all(|r| {
                r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }));
        }
    }
}
