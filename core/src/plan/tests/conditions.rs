//! Conditions that outlive one reconcile, and notes that stay short.

use super::*;

#[test]
fn drift_stays_detected_for_a_while_and_event_notes_stay_short() {
    let (ap, np) = (deny_ap("a"), netpol("a"));
    let mut case = Case::new(vec![ap.clone(), np.clone()]);
    case.converge(&case.run());
    case.observed = observed_of(&[&ap]);
    let p = case.run();
    let s = p.status.clone().unwrap();
    assert_eq!(cond(&s, DRIFT_DETECTED).status, "True");
    assert!(cond(&s, DRIFT_DETECTED)
        .message
        .contains("NetworkPolicy a/meshbaseline-baseline"));
    case.converge(&p);
    case.observed = observed_of(&[&ap, &np]);
    case.now += jiff::SignedDuration::from_secs(60);
    assert_eq!(case.run().status, None, "still True, nothing to write");
    case.now += DRIFT_WINDOW;
    let later = case.run().status.unwrap();
    assert_eq!(cond(&later, DRIFT_DETECTED).status, "False");
    // A finding with a huge message: the event note stays under 1 KiB.
    let mut f = mk_finding(Rule::MB505, "Pod", "a", "web");
    f.message = "x".repeat(5000);
    case.findings = vec![f];
    let p = case.run();
    assert!(
        p.events.iter().all(|e| e.note.len() <= 1024),
        "{:?}",
        p.events
    );
    assert!(!p.events.is_empty());
}
