//! What a scan reports: the type of a match, where it is, how it was found.
//!
//! A [`Finding`] never carries the matched value. It carries the byte span in
//! the original input (so a caller can cut or replace it), the JSON path when
//! the input was JSON, what the validator said, which normalization steps had
//! to run before the value became visible, and whatever the configured
//! redaction yields (a mask, a keyed hash, or nothing).

use serde::Serialize;

use remit_class::Classification;

/// The kinds of personal data and secrets the scanner recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum FindingType {
    /// Payment card number (Luhn + IIN/length table).
    CreditCard,
    /// International bank account number (per-country length + mod-97).
    Iban,
    /// Bank identifier code, only near banking keywords.
    Bic,
    /// US social security number.
    UsSsn,
    /// US individual taxpayer identification number.
    UsItin,
    /// UK national insurance number.
    UkNino,
    /// UK NHS number (mod-11).
    UkNhs,
    /// German tax identification number (Steuer-ID, ISO 7064 mod 11,10).
    DeSteuerId,
    /// French social security number (NIR) with its key.
    FrNir,
    /// Spanish DNI or NIE with its check letter.
    EsDni,
    /// Italian codice fiscale with its check character.
    ItCodiceFiscale,
    /// Dutch citizen service number (BSN, 11-test).
    NlBsn,
    /// Polish PESEL.
    PlPesel,
    /// Swedish personnummer (Luhn).
    SePersonnummer,
    /// Email address.
    Email,
    /// Phone number (E.164 or a common national format).
    Phone,
    /// IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// MAC address.
    MacAddress,
    /// Date of birth (a valid date near a birth keyword).
    DateOfBirth,
    /// Passport number (near a passport keyword).
    Passport,
    /// AWS access key id.
    AwsAccessKeyId,
    /// AWS secret access key (near an AWS keyword, with entropy).
    AwsSecretKey,
    /// GitHub token (classic, OAuth, app or fine-grained).
    GithubToken,
    /// GitLab personal access token.
    GitlabToken,
    /// Slack token or webhook.
    SlackToken,
    /// Stripe secret or restricted key.
    StripeKey,
    /// OpenAI API key.
    OpenaiKey,
    /// Anthropic API key.
    AnthropicKey,
    /// Google API key.
    GoogleApiKey,
    /// PEM private key block.
    PrivateKey,
    /// JSON Web Token.
    Jwt,
    /// `password=` / `secret:` style assignment with a high-entropy value.
    GenericSecret,
    /// Database URL with an embedded password.
    DatabaseUrl,
    /// Bitcoin address (base58check or bech32 checksum).
    BitcoinAddress,
    /// Ethereum address.
    EthereumAddress,
}

impl FindingType {
    /// Every type, in a stable order (for configuration and reports).
    pub const ALL: &'static [FindingType] = &[
        Self::CreditCard,
        Self::Iban,
        Self::Bic,
        Self::UsSsn,
        Self::UsItin,
        Self::UkNino,
        Self::UkNhs,
        Self::DeSteuerId,
        Self::FrNir,
        Self::EsDni,
        Self::ItCodiceFiscale,
        Self::NlBsn,
        Self::PlPesel,
        Self::SePersonnummer,
        Self::Email,
        Self::Phone,
        Self::Ipv4,
        Self::Ipv6,
        Self::MacAddress,
        Self::DateOfBirth,
        Self::Passport,
        Self::AwsAccessKeyId,
        Self::AwsSecretKey,
        Self::GithubToken,
        Self::GitlabToken,
        Self::SlackToken,
        Self::StripeKey,
        Self::OpenaiKey,
        Self::AnthropicKey,
        Self::GoogleApiKey,
        Self::PrivateKey,
        Self::Jwt,
        Self::GenericSecret,
        Self::DatabaseUrl,
        Self::BitcoinAddress,
        Self::EthereumAddress,
    ];

    /// The type's name as printed in reports (`CREDIT_CARD`, `EMAIL`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::CreditCard => "CREDIT_CARD",
            Self::Iban => "IBAN",
            Self::Bic => "BIC",
            Self::UsSsn => "US_SSN",
            Self::UsItin => "US_ITIN",
            Self::UkNino => "UK_NINO",
            Self::UkNhs => "UK_NHS",
            Self::DeSteuerId => "DE_STEUER_ID",
            Self::FrNir => "FR_NIR",
            Self::EsDni => "ES_DNI",
            Self::ItCodiceFiscale => "IT_CODICE_FISCALE",
            Self::NlBsn => "NL_BSN",
            Self::PlPesel => "PL_PESEL",
            Self::SePersonnummer => "SE_PERSONNUMMER",
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::Ipv4 => "IPV4",
            Self::Ipv6 => "IPV6",
            Self::MacAddress => "MAC_ADDRESS",
            Self::DateOfBirth => "DATE_OF_BIRTH",
            Self::Passport => "PASSPORT",
            Self::AwsAccessKeyId => "AWS_ACCESS_KEY_ID",
            Self::AwsSecretKey => "AWS_SECRET_KEY",
            Self::GithubToken => "GITHUB_TOKEN",
            Self::GitlabToken => "GITLAB_TOKEN",
            Self::SlackToken => "SLACK_TOKEN",
            Self::StripeKey => "STRIPE_KEY",
            Self::OpenaiKey => "OPENAI_KEY",
            Self::AnthropicKey => "ANTHROPIC_KEY",
            Self::GoogleApiKey => "GOOGLE_API_KEY",
            Self::PrivateKey => "PRIVATE_KEY",
            Self::Jwt => "JWT",
            Self::GenericSecret => "GENERIC_SECRET",
            Self::DatabaseUrl => "DATABASE_URL",
            Self::BitcoinAddress => "BITCOIN_ADDRESS",
            Self::EthereumAddress => "ETHEREUM_ADDRESS",
        }
    }

    /// Parses a type name as printed by [`FindingType::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Whether this type is a credential (as opposed to personal data).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            Self::AwsAccessKeyId
                | Self::AwsSecretKey
                | Self::GithubToken
                | Self::GitlabToken
                | Self::SlackToken
                | Self::StripeKey
                | Self::OpenaiKey
                | Self::AnthropicKey
                | Self::GoogleApiKey
                | Self::PrivateKey
                | Self::Jwt
                | Self::GenericSecret
                | Self::DatabaseUrl
        )
    }
}

impl std::fmt::Display for FindingType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the validator established about a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// A checksum over the value holds (Luhn, mod-97, mod-11, check letter...).
    Checksum,
    /// The structure is valid (ranges, lengths, registry tables) but the
    /// format has no checksum.
    Structure,
    /// Accepted because a keyword for the type is near the value.
    Context,
    /// The format matched and the value has high entropy (generic secrets).
    Entropy,
}

/// How sure the recognizer is, from its validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Format plus context or entropy.
    Medium,
    /// Format plus a checksum or a vendor-specific prefix.
    High,
}

/// The normalization steps that had to run before a value became visible.
///
/// An empty set means the value was in the input as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Transforms(u16);

impl Transforms {
    /// JSON string escapes were decoded (`\u0034` → `4`).
    pub const JSON_UNESCAPE: Self = Self(1);
    /// NFKC compatibility folding (full-width digits, ligatures).
    pub const NFKC: Self = Self(1 << 1);
    /// Zero-width and other format (`Cf`) characters, or combining marks, were removed.
    pub const FORMAT_CHARS: Self = Self(1 << 2);
    /// Homoglyphs and non-ASCII digits were folded to ASCII.
    pub const CONFUSABLES: Self = Self(1 << 3);
    /// Percent-encoding was decoded.
    pub const PERCENT: Self = Self(1 << 4);
    /// A base64 blob was decoded.
    pub const BASE64: Self = Self(1 << 5);
    /// A hex blob was decoded.
    pub const HEX: Self = Self(1 << 6);
    /// Separators inside a number (spaces, dashes, dots, slashes) were skipped.
    pub const SEPARATORS: Self = Self(1 << 7);

    const NAMES: [(Self, &'static str); 8] = [
        (Self::JSON_UNESCAPE, "json_unescape"),
        (Self::NFKC, "nfkc"),
        (Self::FORMAT_CHARS, "format_chars"),
        (Self::CONFUSABLES, "confusables"),
        (Self::PERCENT, "percent"),
        (Self::BASE64, "base64"),
        (Self::HEX, "hex"),
        (Self::SEPARATORS, "separators"),
    ];

    /// No transformation.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether no transformation was needed.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every step in `other` is in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The names of the steps, in pipeline order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Transforms {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for Transforms {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl Serialize for Transforms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// One match: never the value itself, only where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was found.
    #[serde(rename = "type")]
    pub kind: FindingType,
    /// Byte offset of the first byte in the original input.
    pub start: usize,
    /// Byte offset one past the last byte in the original input.
    pub end: usize,
    /// JSON path of the string or number that held the value (JSON input only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the validator established.
    pub validation: Validation,
    /// How sure the recognizer is.
    pub confidence: Confidence,
    /// Normalization steps that revealed the value.
    pub transforms: Transforms,
    /// The classification this type maps to.
    pub class: Classification,
    /// What the configured redaction yields for the value (`None` for drop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
}
