use super::*;

#[test]
fn relist_reports_only_real_changes() {
    let c: Cache<u32> = Cache::default();
    assert_eq!(c.apply(("a".into(), "x".into()), 1), Some(None));
    assert_eq!(
        c.apply(("a".into(), "x".into()), 1),
        None,
        "same value: no change"
    );
    c.apply(("a".into(), "y".into()), 2);
    c.apply(("a".into(), "w".into()), 4);
    c.init();
    assert_eq!(c.apply(("a".into(), "x".into()), 1), None);
    assert_eq!(c.apply(("a".into(), "z".into()), 3), Some(None));
    assert_eq!(c.apply(("a".into(), "w".into()), 5), Some(Some(4)));
    assert_eq!(c.apply(("a".into(), "w".into()), 5), None, "listed twice");
    assert!(!c.synced());
    assert_eq!(c.init_done(), vec![(("a".into(), "y".into()), 2)]);
    assert!(c.synced());
    let now: Vec<(Key, u32)> = c.read().iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(
        now,
        [("w", 5), ("x", 1), ("z", 3)].map(|(n, v)| (("a".into(), n.into()), v))
    );
    assert!(c.init_done().is_empty(), "no list under way");
}

#[test]
fn a_relist_removes_exactly_the_keys_it_did_not_list() {
    // Keys interleaved with the listed ones, before the first and after the last.
    let c: Cache<u32> = Cache::default();
    for i in 0..200u32 {
        c.apply(key("n", &format!("{i:03}")), i);
    }
    c.init();
    for i in (0..200u32).filter(|i| i % 3 == 1) {
        c.apply(key("n", &format!("{i:03}")), i);
    }
    let removed = c.init_done();
    assert_eq!(removed.len(), 200 - 67);
    assert!(removed.iter().all(|(_, v)| v % 3 != 1));
    assert!(c.read().values().all(|v| v % 3 == 1));
    assert_eq!(c.read().len(), 67);
}

#[test]
fn keys_in_one_namespace_share_its_name() {
    let (a, b) = (key("interned-ns", "x"), key("interned-ns", "y"));
    assert!(Name::ptr_eq(&a.0, &b.0));
    assert_eq!((&*b.0, &*b.1), ("interned-ns", "y"));
}

#[test]
fn an_object_written_during_a_list_is_not_taken_for_deleted() {
    let c: Cache<u32> = Cache::default();
    c.apply(key("a", "listed"), 1);
    c.init();
    c.apply(key("a", "listed"), 1);
    // The executor's write response: created after the list's snapshot.
    c.apply_unless(key("a", "created"), 2, |_, _| false);
    assert!(c.init_done().is_empty());
    assert_eq!(c.read().get(&key("a", "created")), Some(&2));
}

#[test]
fn a_relist_keeps_unchanged_objects_and_their_names() {
    let c: Cache<Arc<String>> = Cache::default();
    let key = || super::key("a", "x");
    let first = key();
    c.apply(first.clone(), Arc::new("same".into()));
    c.apply(("a".into(), "y".into()), Arc::new("old".into()));
    let before = c.read()[&key()].clone();
    c.init();
    assert_eq!(c.apply(key(), Arc::new("same".into())), None);
    let changed = c.apply(("a".into(), "y".into()), Arc::new("new".into()));
    assert_eq!(
        changed,
        Some(Some(Arc::new("old".into()))),
        "only y changed"
    );
    assert!(c.init_done().is_empty());
    let map = c.read();
    assert!(Arc::ptr_eq(&map[&key()], &before), "one copy of x");
    let (held, _) = map.get_key_value(&key()).expect("x");
    assert!(Name::ptr_eq(&held.1, &first.1), "one copy of x's name");
    assert_eq!(*map[&super::key("a", "y")], "new");
}

#[test]
fn key_of_gives_the_names_the_cache_holds() {
    let c: Cache<u32> = Cache::default();
    let first = key("a", "x");
    c.apply(first.clone(), 1);
    let held = c.key_of(&key("a", "x")).expect("cached");
    assert!(Name::ptr_eq(&held.1, &first.1));
    assert_eq!(c.key_of(&key("a", "z")), None);
}

#[test]
fn apply_unless_keeps_what_it_is_told_to() {
    let c: Cache<u32> = Cache::default();
    let k = || super::key("a", "x");
    let newer = |old: &u32, new: &u32| old > new;
    assert_eq!(c.apply_unless(k(), 5, newer), Some(None));
    assert_eq!(c.apply_unless(k(), 3, newer), None, "older value ignored");
    assert_eq!(c.read().get(&k()), Some(&5));
    assert_eq!(c.apply_unless(k(), 7, newer), Some(Some(5)));
}

#[tokio::test]
async fn specific_requests_do_not_wait_for_the_debounce() {
    let t = Arc::new(Triggers::default());
    t.all();
    let mut s = Box::pin(
        t.clone()
            .stream(Duration::from_millis(800), || vec!["a".into(), "b".into()]),
    );
    let t2 = t.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        t2.baseline("b");
    });
    let started = tokio::time::Instant::now();
    assert_eq!(s.next().await.map(|r| r.name), Some("b".into()));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served during the debounce"
    );
    // The debounced request still comes, when it is due.
    assert_eq!(s.next().await.map(|r| r.name), Some("a".into()));
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn a_steady_flow_of_specific_requests_does_not_starve_the_inventory_pass() {
    let t = Arc::new(Triggers::default());
    let t2 = t.clone();
    let flow = tokio::spawn(async move {
        loop {
            t2.baseline("b");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut s = Box::pin(
        t.clone()
            .stream(Duration::from_millis(50), || vec!["a".into(), "b".into()]),
    );
    t.all();
    let started = tokio::time::Instant::now();
    loop {
        let name = s.next().await.map(|r| r.name);
        if name.as_deref() == Some("a") {
            break;
        }
        // A reconcile takes longer than the flow's interval: a request is always pending.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the inventory pass never came"
        );
    }
    flow.abort();
}

#[tokio::test]
async fn costly_inventory_passes_are_spaced_by_their_cost() {
    let t = Arc::new(Triggers::default());
    t.pass_cost(Duration::from_millis(100));
    let mut s = Box::pin(
        t.clone()
            .stream(Duration::from_millis(5), || vec!["a".into()]),
    );
    t.all();
    let started = tokio::time::Instant::now();
    assert_eq!(s.next().await.map(|r| r.name), Some("a".into()));
    assert!(started.elapsed() >= Duration::from_millis(100) * PASS_SPACING);
    // Specific requests are not spaced.
    t.baseline("a");
    let started = tokio::time::Instant::now();
    assert_eq!(s.next().await.map(|r| r.name), Some("a".into()));
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn triggers_coalesce() {
    let t = Arc::new(Triggers::default());
    t.baseline("b");
    t.baseline("b");
    t.all();
    let s = t
        .clone()
        .stream(Duration::from_millis(1), || vec!["a".into(), "b".into()]);
    let got: Vec<String> = s.take(3).map(|r| r.name).collect().await;
    assert_eq!(got, ["b", "a", "b"]);
}
