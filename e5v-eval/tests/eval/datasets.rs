//! Loaders against the hand-written fixtures in `tests/data/` (see its README), including the
//! malformed variants: every error must name the file and the line or entry.

use std::path::Path;

use e5v_eval::EvalError;
use e5v_eval::datasets::{
    CirrSplit, FashionIqCategory, KARPATHY_CAPTIONS_PER_IMAGE, KarpathySplit, StsYear,
    SubmissionMetric, cirr_submission_json, load_cirr, load_fashioniq, load_karpathy,
    load_sick_relatedness, load_sts_benchmark, load_sts_year, write_cirr_submission,
};

use crate::fixtures::data;

/// Asserts a `MalformedJson` error in `file` at `line`, with `needle` in the message.
fn assert_json_error(err: EvalError, file: &str, line: usize, needle: &str) {
    match &err {
        EvalError::MalformedJson {
            path,
            line: l,
            message,
            ..
        } => {
            assert!(path.ends_with(file), "{err}");
            assert_eq!(*l, line, "{err}");
            assert!(message.contains(needle), "{err}");
        }
        other => panic!("expected MalformedJson, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("{file}:{line}:")),
        "{err}"
    );
}

/// Asserts a `MalformedLine` error in `file` at `line`, with `needle` in the message.
fn assert_line_error(err: EvalError, file: &str, line: usize, needle: &str) {
    match &err {
        EvalError::MalformedLine {
            path,
            line: l,
            message,
        } => {
            assert!(path.ends_with(file), "{err}");
            assert_eq!(*l, line, "{err}");
            assert!(message.contains(needle), "{err}");
        }
        other => panic!("expected MalformedLine, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("{file}:{line}: ")),
        "{err}"
    );
}

/// Asserts a `MalformedEntry` error in `file` naming `entry`.
fn assert_entry_error(err: EvalError, file: &str, entry: &str, needle: &str) {
    match &err {
        EvalError::MalformedEntry {
            path,
            entry: e,
            message,
        } => {
            assert!(path.ends_with(file), "{err}");
            assert_eq!(e, entry, "{err}");
            assert!(message.contains(needle), "{err}");
        }
        other => panic!("expected MalformedEntry, got {other:?}"),
    }
}

#[test]
fn karpathy_flickr_test_split() {
    let d = load_karpathy(
        &data("karpathy/dataset_flickr30k.json"),
        KarpathySplit::Test,
        KARPATHY_CAPTIONS_PER_IMAGE,
    )
    .expect("loads");
    let paths: Vec<_> = d
        .images
        .iter()
        .map(|i| i.path.to_str().expect("utf8"))
        .collect();
    assert_eq!(paths, ["1007129816.jpg", "1009434119.jpg", "101362133.jpg"]);
    assert_eq!(
        d.images.iter().map(|i| i.imgid).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert!(d.images.iter().all(|i| i.cocoid.is_none()));
    assert_eq!(d.captions.len(), 15);
    assert_eq!(
        d.caption_to_image,
        [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    );
    assert_eq!(d.captions[0], "A man with an orange hat.");
    // The sixth caption of image 2 is dropped.
    assert_eq!(d.captions[9], "A Boston terrier is running in the grass.");
    assert_eq!(
        d.captions[10],
        "A young female student performing a downward kick."
    );
}

#[test]
fn karpathy_coco_paths_and_ids() {
    let d =
        load_karpathy(&data("karpathy/dataset_coco.json"), KarpathySplit::Test, 5).expect("loads");
    assert_eq!(d.images.len(), 2);
    assert_eq!(
        d.images[0].path,
        Path::new("val2014").join("COCO_val2014_000000391895.jpg")
    );
    assert_eq!(d.images[1].cocoid, Some(522418));
    assert_eq!(d.captions.len(), 10);
    // Raw captions are kept as written (trailing space included); prompts normalise later.
    assert_eq!(
        d.captions[0],
        "A man with a red helmet on a small moped on a dirt road. "
    );
    let restval = load_karpathy(
        &data("karpathy/dataset_coco.json"),
        KarpathySplit::Restval,
        1,
    )
    .expect("loads");
    assert_eq!(
        restval.images[0].path,
        Path::new("train2014").join("COCO_train2014_000000057870.jpg")
    );
}

#[test]
fn karpathy_malformed() {
    let err =
        load_karpathy(&data("karpathy/bad_syntax.json"), KarpathySplit::Test, 5).expect_err("bad");
    assert_json_error(err, "bad_syntax.json", 3, "expected");
    let err =
        load_karpathy(&data("karpathy/missing_raw.json"), KarpathySplit::Test, 5).expect_err("bad");
    assert_json_error(err, "missing_raw.json", 4, "missing field `raw`");
    let err = load_karpathy(&data("karpathy/few_captions.json"), KarpathySplit::Test, 5)
        .expect_err("bad");
    assert_entry_error(err, "few_captions.json", "images[1] (b.jpg)", "4 captions");
    let err = load_karpathy(
        &data("karpathy/dataset_flickr30k.json"),
        KarpathySplit::Restval,
        5,
    )
    .expect_err("empty");
    assert_entry_error(err, "dataset_flickr30k.json", "images", "no image");
    let err =
        load_karpathy(&data("karpathy/nope.json"), KarpathySplit::Test, 5).expect_err("missing");
    assert!(
        matches!(&err, EvalError::Io { path, .. } if path.ends_with("nope.json")),
        "{err:?}"
    );
}

#[test]
fn cirr_val() {
    let d = load_cirr(&data("cirr"), CirrSplit::Val).expect("loads");
    let names: Vec<_> = d.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dev-0-0-img0",
            "dev-0-0-img1",
            "dev-0-1-img0",
            "dev-1-0-img1",
            "dev-1-2-img0",
            "dev-2-0-img1"
        ]
    );
    assert_eq!(d.images[3].path, Path::new("./dev/dev-1-0-img1.png"));
    assert_eq!(d.queries.len(), 3);
    let q = &d.queries[1];
    assert_eq!(
        (q.pairid, q.reference, q.target, q.set_id),
        (102, 4, Some(2), 8)
    );
    assert_eq!(q.caption, "remove the people and add a boat");
    assert_eq!(q.members, [4, 2, 5, 1, 3, 0]);
    assert_eq!(d.references(), [0, 4, 5]);
    assert_eq!(d.targets(), Some(vec![3, 2, 1]));
    assert_eq!(d.members().len(), 3);
}

#[test]
fn cirr_test1_and_submission() {
    let d = load_cirr(&data("cirr"), CirrSplit::Test1).expect("loads");
    assert_eq!(d.queries.len(), 2);
    assert_eq!(d.targets(), None);
    assert_eq!(
        d.queries[0].caption,
        "remove all but one dog and add a woman hugging   it"
    );
    // Gallery sorted by name: 1001-2-img0, 147-1-img1, 359-0-img1, 83-0-img1, 83-1-img1, 906-0-img1.
    let subset = vec![vec![0, 2, 3], vec![5, 3, 4, 1]];
    let json = cirr_submission_json(&d, &subset, SubmissionMetric::RecallSubset).expect("json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid json");
    assert_eq!(v["version"], "rc2");
    assert_eq!(v["metric"], "recall_subset");
    assert_eq!(
        v["12063"],
        serde_json::json!(["test1-1001-2-img0", "test1-359-0-img1", "test1-83-0-img1"])
    );
    assert_eq!(
        v["12064"],
        serde_json::json!(["test1-906-0-img1", "test1-83-0-img1", "test1-83-1-img1"])
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(4));
    // Recall needs 50 per query, or the whole gallery when it is smaller (6 here).
    assert!(matches!(
        cirr_submission_json(&d, &subset, SubmissionMetric::Recall),
        Err(EvalError::InvalidArgument(_))
    ));
    assert!(cirr_submission_json(&d, &subset[..1], SubmissionMetric::RecallSubset).is_err());
    assert!(
        cirr_submission_json(
            &d,
            &[vec![0, 1, 9], vec![0, 1, 2]],
            SubmissionMetric::RecallSubset
        )
        .is_err()
    );
    let out = std::env::temp_dir().join(format!("e5v-eval-submission-{}.json", std::process::id()));
    write_cirr_submission(&out, &d, &subset, SubmissionMetric::RecallSubset).expect("writes");
    assert_eq!(std::fs::read_to_string(&out).expect("read back"), json);
    let _ = std::fs::remove_file(out);
}

#[test]
fn cirr_malformed() {
    let err = load_cirr(&data("cirr_missing_target"), CirrSplit::Val).expect_err("bad");
    assert_entry_error(err, "cap.rc2.val.json", "pairid 202", "target_hard");
    let err = load_cirr(&data("cirr_unknown_image"), CirrSplit::Val).expect_err("bad");
    assert_entry_error(err, "cap.rc2.val.json", "pairid 301", "dev-9-9-img9");
    let err = load_cirr(&data("cirr_bad_json"), CirrSplit::Val).expect_err("bad");
    assert_json_error(err, "cap.rc2.val.json", 3, "invalid type");
    // The fixture root has no test1 split in the malformed variants.
    let err = load_cirr(&data("cirr_bad_json"), CirrSplit::Test1).expect_err("missing");
    assert!(
        matches!(&err, EvalError::Io { path, .. } if path.ends_with("split.rc2.test1.json")),
        "{err:?}"
    );
}

#[test]
fn fashioniq_categories() {
    let d = load_fashioniq(&data("fashioniq"), FashionIqCategory::Dress).expect("loads");
    assert_eq!(d.images.len(), 4);
    assert_eq!(d.images[0].path, Path::new("B008BHCT58.png"));
    assert_eq!(d.targets(), [0, 2, 3]);
    assert_eq!(
        d.queries[1].captions,
        [
            "is longer and blue.".to_owned(),
            "has a floral print?".to_owned()
        ]
    );
    // A candidate outside the gallery is allowed.
    assert_eq!(d.queries[2].candidate, "B07ABSENT1");
    assert_eq!(d.queries[2].candidate_path, Path::new("B07ABSENT1.png"));
    for (category, n) in [
        (FashionIqCategory::Shirt, 2),
        (FashionIqCategory::Toptee, 3),
    ] {
        let d = load_fashioniq(&data("fashioniq"), category).expect("loads");
        assert_eq!(d.queries.len(), n);
        assert_eq!(d.category, category);
    }
    assert_eq!(FashionIqCategory::Toptee.prompt_noun(), "shirt");
    assert_eq!(
        "toptee".parse::<FashionIqCategory>().expect("parses"),
        FashionIqCategory::Toptee
    );
}

#[test]
fn fashioniq_malformed() {
    let root = data("fashioniq_bad");
    let err = load_fashioniq(&root, FashionIqCategory::Dress).expect_err("three captions");
    assert_json_error(
        err,
        "cap.dress.val.json",
        3,
        "invalid length 3, expected exactly 2 captions",
    );
    let err = load_fashioniq(&root, FashionIqCategory::Shirt).expect_err("unknown target");
    assert_entry_error(
        err,
        "cap.shirt.val.json",
        "[1] (target B0NOTTHERE)",
        "not in",
    );
    let err = load_fashioniq(&root, FashionIqCategory::Toptee).expect_err("no candidate");
    assert_json_error(err, "cap.toptee.val.json", 2, "missing field `candidate`");
}

#[test]
fn sts_year_layout() {
    let d = load_sts_year(&data("senteval"), StsYear::Sts13).expect("loads");
    let names: Vec<_> = d.subsets.iter().map(|s| s.name).collect();
    assert_eq!(names, ["FNWN", "headlines", "OnWN"]);
    // FNWN: CRLF, doubled spaces normalised, the unscored pair (empty gold line 2) skipped.
    let fnwn = &d.subsets[0].pairs;
    assert_eq!(fnwn.len(), 2);
    assert_eq!(fnwn[0].sentence1, "The state of being hot .");
    assert_eq!(fnwn[0].sentence2, "The condition of being warm .");
    assert_eq!((fnwn[0].score, fnwn[1].score), (3.8, 4.2));
    assert_eq!(fnwn[1].sentence1, "the act of running");
    // headlines: a trailing empty tab column and a trailing blank gold line are tolerated.
    let headlines = &d.subsets[1].pairs;
    assert_eq!(headlines.len(), 4);
    assert_eq!(headlines[1].sentence2, "Asian markets drop");
    assert_eq!(headlines[1].score, 4.6);
    assert_eq!(d.all_pairs().count(), 9);
    assert_eq!(d.all_pairs().last().map(|p| p.score), Some(0.25));
}

#[test]
fn sts_benchmark_and_sick() {
    let b = load_sts_benchmark(&data("senteval")).expect("loads");
    assert_eq!(b.len(), 4);
    assert_eq!(b[0].sentence1, "A girl is styling her hair.");
    assert_eq!(b[1].score, 3.6);
    // Extra columns ignored; trailing whitespace dropped.
    assert_eq!(b[2].sentence2, "It rains in Paris.");
    assert_eq!(b[3].sentence2, "I agree .");
    let s = load_sick_relatedness(&data("senteval")).expect("loads");
    assert_eq!(s.len(), 3);
    assert_eq!(
        s[0].sentence1,
        "There is no boy playing outdoors and there is no man smiling"
    );
    assert_eq!(
        s.iter().map(|p| p.score).collect::<Vec<_>>(),
        [3.3, 3.7, 3.6]
    );
}

#[test]
fn sts_malformed() {
    let err = load_sts_year(&data("senteval_bad"), StsYear::Sts13).expect_err("3 columns");
    assert_line_error(err, "STS.input.FNWN.txt", 2, "found 3 columns");
    let err = load_sts_year(&data("senteval_bad_gold"), StsYear::Sts13).expect_err("short gold");
    assert_line_error(err, "STS.gs.FNWN.txt", 3, "2 gold lines for 3 input lines");
    let err = load_sts_year(&data("senteval_bad_score"), StsYear::Sts13).expect_err("bad score");
    assert_line_error(err, "STS.gs.FNWN.txt", 2, "\"n/a\"");
    let err = load_sts_benchmark(&data("senteval_bad")).expect_err("6 columns");
    assert_line_error(err, "sts-test.csv", 3, "at least 7");
    let err = load_sick_relatedness(&data("senteval_bad")).expect_err("bad score");
    assert_line_error(err, "SICK_test_annotated.txt", 3, "\"high\"");
    let err = load_sick_relatedness(&data("senteval_bad_utf8")).expect_err("bad utf-8");
    assert_line_error(err, "SICK_test_annotated.txt", 3, "UTF-8");
    let err = load_sts_year(&data("senteval"), StsYear::Sts12).expect_err("absent");
    assert!(
        matches!(&err, EvalError::Io { path, .. } if path.ends_with("STS.input.MSRpar.txt")),
        "{err:?}"
    );
}

#[test]
fn mini_and_word_similarity() {
    use e5v_eval::datasets::{WordSimSet, load_mini, load_word_similarity};

    let d = load_mini(&data("mini")).expect("loads");
    assert_eq!(d.images.len(), 3);
    assert_eq!(d.caption_to_image, [0, 1, 2]);
    assert_eq!(d.images[1].path, Path::new("green-bar.png"));
    let pairs = load_word_similarity(&data("mini").join(WordSimSet::WordSim353.file_name()))
        .expect("loads");
    assert_eq!(pairs.len(), 6);
    assert_eq!(
        (pairs[0].word1.as_str(), pairs[0].word2.as_str()),
        ("tiger", "cat")
    );
    assert_eq!(pairs[5].score, 0.2);
    let err = load_word_similarity(&data("mini/captions.json")).expect_err("not a TSV");
    assert_line_error(err, "captions.json", 1, "3 tab-separated columns");
    let err = load_mini(&data("karpathy")).expect_err("no captions.json");
    assert!(matches!(err, EvalError::Io { .. }), "{err}");
}
