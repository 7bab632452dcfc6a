//! Recognizer tests: for every type, values that must be found, near misses
//! that must not, and evasion variants; property tests over normalization
//! and offsets; linear work on pathological input.

use proptest::prelude::*;

use crate::{FindingType as T, InputFormat, ScanConfig, Scanner, Transforms};

fn scanner() -> &'static Scanner {
    static S: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
    S.get_or_init(|| Scanner::new(ScanConfig::default()))
}

fn kinds(input: &str) -> Vec<T> {
    scanner().scan(input.as_bytes()).unwrap().types()
}

/// Asserts `kind` is found and its span in the input is exactly `value`.
fn assert_found(input: &str, kind: T, value: &str) {
    let report = scanner().scan(input.as_bytes()).unwrap();
    let hit = report.findings.iter().find(|f| f.kind == kind);
    let f = hit.unwrap_or_else(|| panic!("{kind} not found in {input:?}: {:?}", report.findings));
    assert_eq!(&input[f.start..f.end], value, "span of {kind} in {input:?}");
}

fn assert_not(input: &str, kind: T) {
    assert!(
        !kinds(input).contains(&kind),
        "{kind} wrongly found in {input:?}"
    );
}

// --- true positives, one table for every recognizer

const POSITIVES: &[(T, &str, &str)] = &[
    (T::CreditCard, "pay with 4111 1111 1111 1111 today", "4111 1111 1111 1111"),
    (T::CreditCard, "mc 5555-5555-5555-4444.", "5555-5555-5555-4444"),
    (T::CreditCard, "amex 378282246310005", "378282246310005"),
    (T::CreditCard, "jcb 3530111333300000", "3530111333300000"),
    (T::CreditCard, "mc2 2223003122003222", "2223003122003222"),
    (T::Iban, "IBAN GB82 WEST 1234 5698 7654 32 ok", "GB82 WEST 1234 5698 7654 32"),
    (T::Iban, "to DE89370400440532013000", "DE89370400440532013000"),
    (T::Bic, "SWIFT/BIC: DEUTDEFF", "DEUTDEFF"),
    (T::Bic, "bank code NWBKGB2L100 please", "NWBKGB2L100"),
    (T::UsSsn, "SSN 536-90-4399", "536-90-4399"),
    (T::UsSsn, "ssn: 536904399", "536904399"),
    (T::UsItin, "ITIN 912-70-1234", "912-70-1234"),
    (T::UkNino, "NI number AB 12 34 56 C", "AB 12 34 56 C"),
    (T::UkNino, "nino=AB123456C", "AB123456C"),
    (T::UkNhs, "NHS number 943 476 5919", "943 476 5919"),
    (T::DeSteuerId, "Steuer-ID: 86 095 742 719", "86 095 742 719"),
    (T::FrNir, "NIR 2 55 08 14 168 025 38", "2 55 08 14 168 025 38"),
    (T::EsDni, "DNI 12345678Z", "12345678Z"),
    (T::EsDni, "NIE X-1234567-L", "X-1234567-L"),
    (T::ItCodiceFiscale, "CF RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    (T::NlBsn, "BSN: 1112.22.333", "1112.22.333"),
    (T::PlPesel, "PESEL 44051401359", "44051401359"),
    (T::SePersonnummer, "pnr 811218-9876", "811218-9876"),
    (T::SePersonnummer, "personnummer 198112189876", "198112189876"),
    (T::Email, "mail alice.smith+tag@example.co.uk now", "alice.smith+tag@example.co.uk"),
    (T::Phone, "call +44 20 7946 0958", "+44 20 7946 0958"),
    (T::Phone, "call (555) 123-4567 x12", "(555) 123-4567 x12"),
    (T::Phone, "tel 555.123.4567", "555.123.4567"),
    (T::Phone, "Tel. 030 1234 5678", "030 1234 5678"),
    (T::Phone, "phone is (0113)4960258.", "(0113)4960258"),
    (T::Phone, "name,phone\nAl,01514960864\n", "01514960864"),
    (T::Ipv4, "host 192.168.1.20 up", "192.168.1.20"),
    (T::Ipv6, "addr 2001:db8::8a2e:370:7334 up", "2001:db8::8a2e:370:7334"),
    (T::MacAddress, "mac 00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"),
    (T::DateOfBirth, "date of birth: 1985-07-14", "1985-07-14"),
    (T::DateOfBirth, "DOB 14/07/1985", "14/07/1985"),
    (T::DateOfBirth, "born on July 14, 1985", "July 14, 1985"),
    (T::Passport, "Passport No: X7294615", "X7294615"),
    (T::AwsAccessKeyId, "key AKIAZ7VRSQ5TJS2MHCQ4", "AKIAZ7VRSQ5TJS2MHCQ4"),
    (
        T::AwsSecretKey,
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        T::GithubToken,
        "token ghp_aBcD1234eFgH5678iJkL9012mNoP3456qRsT",
        "ghp_aBcD1234eFgH5678iJkL9012mNoP3456qRsT",
    ),
    (T::GitlabToken, "glpat-Ab3dEf7hIj1kLm5oPq9s", "glpat-Ab3dEf7hIj1kLm5oPq9s"),
    (T::SlackToken, "xoxb-123456789012-AbCdEfGhIjKl", "xoxb-123456789012-AbCdEfGhIjKl"),
    (T::StripeKey, "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    (
        T::OpenaiKey,
        "OPENAI=sk-proj-Ab3dEf7hIj1kLm5oPq9sTu3wXy7zAb3dEf7h",
        "sk-proj-Ab3dEf7hIj1kLm5oPq9sTu3wXy7zAb3dEf7h",
    ),
    (T::GoogleApiKey, "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"),
    (
        T::PrivateKey,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    ),
    (
        T::Jwt,
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    (T::GenericSecret, "password=Xk9mQ2vL7pR4", "Xk9mQ2vL7pR4"),
    (T::GenericSecret, r#"{"client_secret": "f8Kq2Lz9Wm3Rt7Yp"}"#, "f8Kq2Lz9Wm3Rt7Yp"),
    (
        T::DatabaseUrl,
        "DATABASE_URL=postgres://app:s3cr3tP4ss@db.internal:5432/prod",
        "postgres://app:s3cr3tP4ss@db.internal:5432/prod",
    ),
    (T::BitcoinAddress, "btc 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
    (
        T::BitcoinAddress,
        "btc bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    ),
    (
        T::EthereumAddress,
        "eth 0x52908400098527886E0F7030069857D2E4169EE7",
        "0x52908400098527886E0F7030069857D2E4169EE7",
    ),
];

#[test]
fn every_recognizer_finds_its_true_positives() {
    for (kind, input, value) in POSITIVES {
        assert_found(input, *kind, value);
    }
    let covered: std::collections::BTreeSet<T> = POSITIVES.iter().map(|p| p.0).collect();
    for kind in T::ALL {
        if *kind != T::AnthropicKey {
            assert!(covered.contains(kind), "no positive test for {kind}");
        }
    }
    let ant = format!(
        "ANTHROPIC_API_KEY=sk-ant-api03-{}AA",
        "Ab3dEf7hIj".repeat(9)
    );
    assert_found(&ant, T::AnthropicKey, &ant[18..]);
    assert!(!kinds(&ant).contains(&T::OpenaiKey));
}

// --- near misses: things that look like PII and are not

#[test]
fn luhn_invalid_and_junk_card_numbers_are_refused() {
    for s in [
        "4111 1111 1111 1112",
        "0000 0000 0000 0000",
        "1234 5678 9012 3456",
        "9111111111111111",
    ] {
        assert_not(s, T::CreditCard);
    }
}

#[test]
fn iban_with_bad_checksum_or_length_is_refused() {
    assert_not("GB82WEST12345698765433", T::Iban);
    assert_not("GB82WEST1234569876543", T::Iban);
    assert_not("ZZ82WEST12345698765432", T::Iban);
}

#[test]
fn bic_shaped_words_without_banking_context_are_refused() {
    assert_not("please see DEUTDEFF", T::Bic);
    assert_not("bank BANKRUPT", T::Bic);
}

#[test]
fn reserved_ssn_ranges_and_unlabelled_nine_digit_numbers_are_refused() {
    for s in [
        "000-12-3456",
        "666-12-3456",
        "536-00-4399",
        "536-90-0000",
        "order 536904399",
        "536-90.4399",
    ] {
        assert_not(s, T::UsSsn);
    }
    assert_not("912-40-1234", T::UsItin);
}

#[test]
fn national_ids_with_wrong_checks_or_no_label_are_refused() {
    assert_not("BG123456C", T::UkNino);
    assert_not("ab123456c", T::UkNino);
    assert_not("NHS number 943 476 5918", T::UkNhs);
    assert_not("ref 943 476 5919", T::UkNhs);
    assert_not("Steuer-ID 86095742718", T::DeSteuerId);
    assert_not("order 86095742719", T::DeSteuerId);
    assert_not("NIR 255081416802539", T::FrNir);
    assert_not("DNI 12345678A", T::EsDni);
    assert_not("CF RSSMRA85T10A562T", T::ItCodiceFiscale);
    assert_not("BSN 111222334", T::NlBsn);
    assert_not("order 111222333", T::NlBsn);
    assert_not("PESEL 44051401358", T::PlPesel);
    assert_not("invoice 44051401359", T::PlPesel);
    assert_not("811218-9877", T::SePersonnummer);
}

#[test]
fn look_alike_contact_and_network_values_are_refused() {
    assert_not("user@localhost", T::Email);
    assert_not("a@b", T::Email);
    assert_not("version 1.2.3.4.5", T::Ipv4);
    assert_not("999.1.1.1", T::Ipv4);
    assert_not("std::vector and 10:30:00", T::Ipv6);
    assert_not("00:00:00:00:00:00", T::MacAddress);
    assert_not("00:1A:2B-3C:4D:5E", T::MacAddress);
    assert_not("order 2024-01-15", T::Phone);
    assert_not("id 123456789012", T::Phone);
    assert_not("phone id 123456789012", T::Phone);
}

#[test]
fn dates_and_codes_without_their_keywords_are_refused() {
    assert_not("shipped 1985-07-14", T::DateOfBirth);
    assert_not("date of birth: 1985-13-14", T::DateOfBirth);
    assert_not("order X7294615", T::Passport);
    assert_not("passport number: unknown", T::Passport);
}

#[test]
fn placeholder_and_low_entropy_secrets_are_refused() {
    assert_not("password=********", T::GenericSecret);
    assert_not("password=${DB_PASSWORD}", T::GenericSecret);
    assert_not("password=aaaaaaaaaaaa", T::GenericSecret);
    assert_not("postgres://app:${PW}@db/prod", T::DatabaseUrl);
    assert_not("postgres://db.internal/prod", T::DatabaseUrl);
    assert_not("ghp_short", T::GithubToken);
    assert_not("AKIAIOSFODNN7EXAMPL", T::AwsAccessKeyId);
    assert_not("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", T::BitcoinAddress);
    assert_not(
        "0x0000000000000000000000000000000000000000",
        T::EthereumAddress,
    );
    assert_not("uuid 123e4567-e89b-12d3-a456-426614174000", T::CreditCard);
}

// --- evasion variants

#[test]
fn zero_width_characters_inside_a_card_do_not_hide_it() {
    let input = "card 4\u{200B}111\u{200C}1111\u{2060}11111111";
    let report = scanner().scan(input.as_bytes()).unwrap();
    let f = &report.findings[0];
    assert_eq!(f.kind, T::CreditCard);
    assert_eq!(
        &input[f.start..f.end],
        "4\u{200B}111\u{200C}1111\u{2060}11111111"
    );
    assert!(f.transforms.contains(Transforms::FORMAT_CHARS));
}

#[test]
fn full_width_digits_do_not_hide_an_ssn() {
    let input = "ssn ５３６-９０-４３９９";
    let report = scanner().scan(input.as_bytes()).unwrap();
    let f = &report.findings[0];
    assert_eq!(f.kind, T::UsSsn);
    assert_eq!(&input[f.start..f.end], "５３６-９０-４３９９");
    assert!(f.transforms.contains(Transforms::NFKC));
}

#[test]
fn json_unicode_escapes_do_not_hide_an_email() {
    let input = r#"{"params":{"arguments":{"to":"\u0061lice@ex\u0061mple.com"}}}"#;
    let report = scanner().scan(input.as_bytes()).unwrap();
    let f = &report.findings[0];
    assert_eq!(f.kind, T::Email);
    assert_eq!(f.path.as_deref(), Some("$.params.arguments.to"));
    assert_eq!(&input[f.start..f.end], r"\u0061lice@ex\u0061mple.com");
    assert!(f.transforms.contains(Transforms::JSON_UNESCAPE));
}

#[test]
fn base64_and_double_wrapping_do_not_hide_a_card() {
    // base64("4111111111111111") and base64(base64(...)).
    let once = "note: NDExMTExMTExMTExMTExMQ==";
    let f = &scanner().scan(once.as_bytes()).unwrap().findings[0];
    assert_eq!(f.kind, T::CreditCard);
    assert_eq!(&once[f.start..f.end], "NDExMTExMTExMTExMTExMQ");
    assert!(f.transforms.contains(Transforms::BASE64));
    let twice = "note: TkRFeE1URXhNVEV4TVRFeE1URXhNUT09";
    assert!(kinds(twice).contains(&T::CreditCard));
    // A third layer is beyond the bound and is not peeled.
    let thrice = "note: VGtSRmVFMVVSWGhOVkVWNFRWUkZlRTFWUlhoTlVUMDk=";
    assert!(!kinds(thrice).contains(&T::CreditCard));
}

#[test]
fn percent_and_hex_encoding_do_not_hide_values() {
    let input = "q=alice%40example%2Ecom";
    let f = &scanner().scan(input.as_bytes()).unwrap().findings[0];
    assert_eq!(f.kind, T::Email);
    assert_eq!(&input[f.start..f.end], "alice%40example%2Ecom");
    assert!(kinds("blob 34313131313131313131313131313131").contains(&T::CreditCard));
}

#[test]
fn homoglyphs_do_not_hide_a_token_or_an_iban() {
    // Cyrillic 'р' in "ghp" and Cyrillic 'В' in "GB".
    assert!(kinds("ghр_aBcD1234eFgH5678iJkL9012mNoP3456qRsT").contains(&T::GithubToken));
    assert!(kinds("GВ82WEST12345698765432").contains(&T::Iban));
    // Arabic-Indic digits.
    assert!(kinds("٤١١١١١١١١١١١١١١١").contains(&T::CreditCard));
}

#[test]
fn separators_inside_numbers_do_not_hide_a_card() {
    for s in [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "41 11 11 11 11 11 11 11",
    ] {
        assert!(kinds(s).contains(&T::CreditCard), "{s}");
    }
}

// --- reading the input

#[test]
fn json_paths_are_reported_for_each_value() {
    let input = br#"{"a":[{"ssn":"536-90-4399"}],"b":"x@example.com","k 1":4111111111111111}"#;
    let report = scanner().scan(input).unwrap();
    assert!(report.json);
    let paths: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.kind, f.path.clone().unwrap()))
        .collect();
    assert!(paths.contains(&(T::UsSsn, "$.a[0].ssn".into())));
    assert!(paths.contains(&(T::Email, "$.b".into())));
    assert!(paths.contains(&(T::CreditCard, "$[\"k 1\"]".into())));
}

#[test]
fn values_split_across_json_fields_are_out_of_scope() {
    // Documented limitation: each half alone is no card.
    let report = scanner()
        .scan(br#"{"a":"4111 1111","b":"1111 1111"}"#)
        .unwrap();
    assert!(report.findings.is_empty());
}

#[test]
fn oversized_input_is_an_error_not_a_truncation() {
    let s = Scanner::new(ScanConfig {
        max_bytes: 10,
        ..ScanConfig::default()
    });
    let err = s.scan(b"4111111111111111").unwrap_err();
    assert!(err.to_string().contains("16 bytes"), "{err}");
}

#[test]
fn invalid_utf8_is_scanned_with_a_warning() {
    let report = scanner()
        .scan(b"\xff\xfe card 4111111111111111 \xc3")
        .unwrap();
    assert!(report.warnings.contains(&crate::Warning::InvalidUtf8));
    assert_eq!(report.findings[0].kind, T::CreditCard);
    assert_eq!((report.findings[0].start, report.findings[0].end), (8, 24));
}

#[test]
fn forced_json_that_does_not_parse_is_scanned_as_text_with_a_warning() {
    let s = Scanner::new(ScanConfig {
        format: InputFormat::Json,
        ..ScanConfig::default()
    });
    let report = s.scan(b"not json 536-90-4399").unwrap();
    assert!(report.warnings.contains(&crate::Warning::NotJson));
    assert_eq!(report.types(), vec![T::UsSsn]);
}

#[test]
fn findings_never_carry_the_value() {
    let input = "4111111111111111 alice@example.com 536-90-4399";
    let report = scanner().scan(input.as_bytes()).unwrap();
    let json = serde_json::to_string(&report).unwrap();
    for secret in [
        "4111111111111111",
        "alice@example.com",
        "536-90-4399",
        "alice",
    ] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    assert_eq!(report.classification, crate::Classification::Restricted);
}

#[test]
fn redacted_copy_replaces_every_span() {
    let input = b"mail alice@example.com card 4111111111111111.";
    let report = scanner().scan(input).unwrap();
    let out = String::from_utf8(report.redact_input(input)).unwrap();
    assert_eq!(out, "mail ***************** card ************1111.");
}

#[test]
fn clean_input_is_public() {
    let report = scanner()
        .scan(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"weather in Paris"}}}"#)
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.classification, crate::Classification::Public);
}

// --- linear work on pathological input

fn pathological(n: usize) -> Vec<Vec<u8>> {
    let rep = |unit: &str| unit.repeat(n / unit.len()).into_bytes();
    vec![
        rep("1"),
        rep("1 "),
        rep("1-2."),
        rep("a@"),
        rep("\\u0034"),
        rep("::"),
        rep("password="),
        rep("-----BEGIN PRIVATE KEY-----"),
        rep("NDEx"),
        rep("%3"),
        rep("\u{200B}4"),
    ]
}

#[test]
fn pathological_input_takes_linear_work() {
    // Work is bounded: every decoded layer together stays within a small
    // multiple of the input, whatever the input.
    for input in pathological(10 * 1024 * 1024) {
        let report = scanner().scan(&input).unwrap();
        assert!(
            report.bytes_scanned <= 3 * input.len(),
            "{} bytes scanned for {} input bytes",
            report.bytes_scanned,
            input.len()
        );
    }
}

// --- properties

fn zero_width() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}', '\u{180E}',
    ])
}

const SAMPLES: &[(T, &str)] = &[
    (T::CreditCard, "4111111111111111"),
    (T::Email, "alice@example.com"),
    (T::UsSsn, "536-90-4399"),
    (T::Iban, "DE89370400440532013000"),
    (T::AwsAccessKeyId, "AKIAZ7VRSQ5TJS2MHCQ4"),
];

fn widen(c: char) -> char {
    match c {
        '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
        _ => c,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn zero_width_insertions_never_hide_a_finding(
        which in 0..SAMPLES.len(),
        inserts in prop::collection::vec((0usize..64, zero_width()), 0..8),
    ) {
        let (kind, value) = SAMPLES[which];
        let mut chars: Vec<char> = value.chars().collect();
        for (pos, zw) in inserts {
            let at = 1 + pos % (chars.len() - 1);
            chars.insert(at, zw);
        }
        let evasive: String = chars.into_iter().collect();
        let input = format!("x {evasive} y");
        let report = scanner().scan(input.as_bytes()).unwrap();
        let f = report.findings.iter().find(|f| f.kind == kind);
        prop_assert!(f.is_some(), "{} hidden in {:?}", kind, input);
        let f = f.unwrap();
        // The span maps back to exactly the evasive value in the original.
        prop_assert_eq!(&input[f.start..f.end], evasive.as_str());
    }

    #[test]
    fn changing_width_never_hides_a_finding(
        which in 0..SAMPLES.len(),
        mask in prop::collection::vec(any::<bool>(), 32),
    ) {
        let (kind, value) = SAMPLES[which];
        let wide: String = value
            .chars()
            .zip(mask.iter().cycle())
            .map(|(c, &w)| if w { widen(c) } else { c })
            .collect();
        let input = format!("({wide})");
        let report = scanner().scan(input.as_bytes()).unwrap();
        let f = report.findings.iter().find(|f| f.kind == kind);
        prop_assert!(f.is_some(), "{} hidden in {:?}", kind, input);
        prop_assert_eq!(&input[f.unwrap().start..f.unwrap().end], wide.as_str());
    }

    #[test]
    fn offsets_always_map_back_inside_the_original(
        input in prop::collection::vec(prop::sample::select(vec![
            "4111", " ", "1111", "-", "\u{200B}", "５", "\\u0034", "@", "a", "example.com",
            "\"", "{", "}", ":", ",", "NDEx", "%34", "\u{FF0E}", "é", "\u{301}",
        ]), 0..40),
        raw in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = input.concat().into_bytes();
        bytes.extend_from_slice(&raw);
        let report = scanner().scan(&bytes).unwrap();
        let text = std::str::from_utf8(&bytes).ok();
        for f in &report.findings {
            prop_assert!(f.start < f.end && f.end <= bytes.len());
            if let Some(t) = text {
                prop_assert!(t.is_char_boundary(f.start) && t.is_char_boundary(f.end));
            }
        }
    }
}

#[test]
fn a_vendor_token_assigned_to_a_generic_key_is_reported_as_the_vendor_type() {
    // base64 of a GitHub token behind `token:`: the decoded layer names it.
    let input = "token: Z2hwXzhOcVN5MDZFU0dtSEtjanBMQzNCWkNYSHNHcGdFYjZ3TWZDag==";
    assert_eq!(kinds(input), vec![T::GithubToken]);
}

// --- issue 27: classes of misses on text we did not write

#[test]
fn any_separator_class_between_digit_groups_is_joined_when_the_checksum_holds() {
    let cases: &[(T, &str, &str)] = &[
        (
            T::CreditCard,
            "card 4111.1111.1111.1111 ok",
            "4111.1111.1111.1111",
        ),
        (
            T::CreditCard,
            "card 4111/1111/1111/1111 ok",
            "4111/1111/1111/1111",
        ),
        (
            T::CreditCard,
            "card 41 1111 11 1111 1111 ok",
            "41 1111 11 1111 1111",
        ),
        (
            T::CreditCard,
            "card 4111 - 1111  1111_1111 ok",
            "4111 - 1111  1111_1111",
        ),
        (
            T::Iban,
            "iban DE89.3704.0044.0532.0130.00 ok",
            "DE89.3704.0044.0532.0130.00",
        ),
        (
            T::Iban,
            "iban GB2 9NWBK 6016 1331 9268 19 ok",
            "GB2 9NWBK 6016 1331 9268 19",
        ),
        (T::UkNhs, "NHS number 943.476.5919", "943.476.5919"),
        (T::DeSteuerId, "Steuer-ID 860 957 427 19", "860 957 427 19"),
        (
            T::FrNir,
            "NIR 2.55.08.14.168.025.38",
            "2.55.08.14.168.025.38",
        ),
        (T::EsDni, "DNI 1234.5678-Z", "1234.5678-Z"),
        (T::NlBsn, "BSN 111/222/333", "111/222/333"),
        (T::PlPesel, "PESEL 440 514 013 59", "440 514 013 59"),
        (
            T::SePersonnummer,
            "personnummer 81 12 18 98 76",
            "81 12 18 98 76",
        ),
        (T::UsSsn, "SSN 5369 04 399", "5369 04 399"),
    ];
    for (kind, input, value) in cases {
        assert_found(input, *kind, value);
    }
}

#[test]
fn separators_do_not_join_numbers_a_checksum_rejects_or_a_structure_explains() {
    // An IPv4 address whose digits pass PESEL's check, a UUID whose middle
    // groups pass Luhn, a date and time whose digits pass personnummer's.
    assert_not("host 131.114.47.208 up", T::PlPesel);
    assert_found("host 131.114.47.208 up", T::Ipv4, "131.114.47.208");
    assert_not("id 0b704250-5694-4879-8748-9066424b061b", T::CreditCard);
    assert_not("id 0be9861b-564c-419f-be09-36409b3dccb5", T::Iban);
    assert_not("at 07.12.2026 10:44", T::SePersonnummer);
    assert_not("card 4111.1111.1111.1112", T::CreditCard);
}

#[test]
fn percent_encoded_digits_are_one_more_decoded_view_with_original_spans() {
    let input = "GET /pay?c=%34%31%31%31%20%31%31%31%31%20%31%31%31%31%20%31%31%31%31&x=%FF";
    let report = scanner().scan(input.as_bytes()).unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.kind == T::CreditCard)
        .expect("card in the percent-decoded view, despite a stray %FF");
    assert_eq!(&input[f.start..f.end], &input[11..68]);
    assert!(f.transforms.contains(Transforms::PERCENT));
    assert_found(
        "p=%34%34%30%35%31%34%30%31%33%35%39",
        T::PlPesel,
        "%34%34%30%35%31%34%30%31%33%35%39",
    );
}

#[test]
fn a_keyword_before_a_base64_blob_reaches_the_value_inside_it() {
    // base64("111222333"), base64("44051401359") after their keywords.
    assert_found("BSN: MTExMjIyMzMz ok", T::NlBsn, "MTExMjIyMzMz");
    assert_found("NHS number OTQzNDc2NTkxOQ== ok", T::UkNhs, "OTQzNDc2NTkxOQ");
    assert_not("order MTExMjIyMzMz", T::NlBsn);
}

#[test]
fn digits_of_every_unicode_script_and_mixed_widths_do_not_hide_a_card() {
    let to = |zero: u32, s: &str, every: usize| -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| match c.to_digit(10) {
                Some(d) if i % every == 0 => char::from_u32(zero + d).unwrap(),
                _ => c,
            })
            .collect()
    };
    let card = "4111 1111 1111 1111";
    for zero in [
        0xFF10, 0x0660, 0x0966, 0x0E50, 0x1D7CE, 0x1040, 0x1E950, 0x11066,
    ] {
        for every in [1, 2, 3] {
            let value = to(zero, card, every);
            assert_found(&format!("pay {value} now"), T::CreditCard, &value);
        }
    }
}

#[test]
fn steuer_id_and_dotted_bsn_are_found_without_a_keyword() {
    assert_found("x 86095742719 y", T::DeSteuerId, "86095742719");
    assert_found("x 1112.22.333 y", T::NlBsn, "1112.22.333");
    assert_not("x 111222333 y", T::NlBsn);
    assert_not("x 86095742718 y", T::DeSteuerId);
}

#[test]
fn pesel_is_found_without_a_keyword_when_it_stands_alone() {
    assert_found(
        "Bed that then rate. 44051401359 Right in thank.",
        T::PlPesel,
        "44051401359",
    );
    assert_found("{\"x\":\"02070803628\"}", T::PlPesel, "02070803628");
}

#[test]
fn numbers_labelled_as_something_else_or_part_of_a_longer_run_are_not_pesel() {
    assert_not("invoice 44051401359", T::PlPesel);
    assert_not("tracking no. 44051401359", T::PlPesel);
    assert_not("call +44051401359", T::PlPesel);
    assert_not("44051401359 123", T::PlPesel);
    assert_not("12 44051401359", T::PlPesel);
    // Born 2160 is not someone alive; the keyword still finds the PESEL format.
    assert_not("x 60452100004 y", T::PlPesel);
}

#[test]
fn national_phone_numbers_without_a_plus_are_found_by_label_or_shape() {
    let cases: &[(&str, &str)] = &[
        ("Phone: 790 008 063", "790 008 063"),
        ("mobile 3534869076", "3534869076"),
        ("Phone:\\n040 758 8388", "040 758 8388"),
        ("\\n9388 4482 office\\n", "9388 4482"),
        ("msg to (88) 279-120 now", "(88) 279-120"),
        ("Mobile: 01.04.51.36.52", "01.04.51.36.52"),
    ];
    for (input, value) in cases {
        assert_found(input, T::Phone, value);
    }
    assert_not("order 790 008 063", T::Phone);
    assert_not("total 2026-12-07", T::Phone);
}

#[test]
fn placeholder_keys_and_documentation_examples_are_not_secrets() {
    for s in [
        "AKIAXXXXXXXXXXXXXXXX",
        "key AKIAIOSFODNN7EXAMPLE",
        "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
        "AIzaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "api_key=<your-api-key>",
        "token: REPLACE_ME_1234567",
        "password=EXAMPLEPASSWORD1",
        "xoxb-0000000000-XXXXXXXXXXXX",
    ] {
        assert!(
            kinds(s).is_empty(),
            "placeholder reported in {s:?}: {:?}",
            kinds(s)
        );
    }
    // The same shapes with random bodies are still found.
    assert_found(
        "AKIAZ7VRSQ5TJS2MHCQ4",
        T::AwsAccessKeyId,
        "AKIAZ7VRSQ5TJS2MHCQ4",
    );
    assert_found("password=Xk9mQ2vL7pR4", T::GenericSecret, "Xk9mQ2vL7pR4");
}
