//! Keywords of open answers (survey "why?" texts): Chinese segmented into words with jieba, any
//! other script split into words, stop words and one-character Chinese words left out, each term
//! counted once per answer that uses it.

use std::collections::HashMap;
use std::sync::OnceLock;

use jieba_rs::Jieba;
use serde::Serialize;

/// A term and how many answers use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keyword {
    /// The word (English lower-cased).
    pub term: String,
    /// Answers that use it.
    pub count: u64,
}

/// Chinese function words and fillers that say nothing about the experience.
const ZH_STOP: &[&str] = &[
    "我们",
    "你们",
    "他们",
    "她们",
    "它们",
    "自己",
    "这个",
    "那个",
    "这些",
    "那些",
    "这样",
    "那样",
    "这里",
    "那里",
    "什么",
    "怎么",
    "为什么",
    "因为",
    "所以",
    "但是",
    "不过",
    "而且",
    "还是",
    "或者",
    "如果",
    "虽然",
    "然后",
    "就是",
    "只是",
    "还有",
    "没有",
    "可以",
    "觉得",
    "感觉",
    "一个",
    "一下",
    "一些",
    "一点",
    "有点",
    "有些",
    "比较",
    "非常",
    "特别",
    "真的",
    "已经",
    "现在",
    "时候",
    "的话",
    "之后",
    "以后",
    "之前",
    "以前",
    "每次",
    "这次",
    "上次",
    "下次",
    "希望",
    "应该",
    "需要",
    "知道",
    "东西",
    "还会",
    "不会",
    "不是",
    "不太",
    "还行",
    "也是",
    "都是",
    "就会",
    "我会",
    "你们家",
    "很多",
    "太多",
    "一直",
    "总是",
    "其实",
    "地方",
    "问题",
];

/// English stop words.
const EN_STOP: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "with", "was", "were", "this", "that", "these", "those", "have", "has", "had",
    "they", "them", "their", "there", "here", "from", "what", "when", "where", "which", "who", "why", "how", "all", "any", "can", "could",
    "would", "should", "will", "just", "very", "too", "much", "more", "most", "some", "than", "then", "also", "been", "being", "our",
    "out", "about", "into", "over", "only", "its", "it's", "i'm", "don't", "did", "does", "really", "always", "every", "because", "again",
    "get", "got",
];

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

/// The terms of one text, each once.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in jieba().cut(text, true) {
        let word = word.word.trim();
        let han = word.chars().filter(|c| is_han(*c)).count();
        let term = if han > 0 {
            // A one-character word (的, 了, 很 …) carries too little on its own.
            if han < 2 || word.chars().any(|c| !is_han(c)) || ZH_STOP.contains(&word) {
                continue;
            }
            word.to_owned()
        } else {
            let w = word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
            if w.chars().count() < 3 || !w.chars().all(|c| c.is_alphabetic() || c == '\'' || c == '-') || EN_STOP.contains(&w.as_str()) {
                continue;
            }
            w
        };
        if !out.contains(&term) {
            out.push(term);
        }
    }
    out
}

/// The `top` most used terms of `texts`, most used first (ties by term).
pub fn keywords<'a>(texts: impl IntoIterator<Item = &'a str>, top: usize) -> Vec<Keyword> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for text in texts {
        for term in terms(text) {
            *counts.entry(term).or_default() += 1;
        }
    }
    let mut all: Vec<Keyword> = counts.into_iter().map(|(term, count)| Keyword { term, count }).collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.term.cmp(&b.term)));
    all.truncate(top);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_answers_are_segmented_into_words() {
        let answers = ["上菜速度太慢了，等了四十分钟", "服务员态度很好，但是上菜速度慢", "菜品质量不错，上菜速度可以再快一点"];
        let k = keywords(answers.iter().copied(), 5);
        // jieba's segmentation: [上菜 速度 太慢 四十分钟] [服务员 态度 上菜 速度慢]
        // [菜品 质量 不错 上菜 速度] (速度慢 is one word of its dictionary).
        assert_eq!(k[0], Keyword { term: "上菜".into(), count: 3 });
        assert_eq!(k[1], Keyword { term: "速度".into(), count: 2 });
        assert_eq!(terms(answers[0]), ["上菜", "速度", "太慢", "四十分钟"]);
        let all: Vec<String> = terms(answers[1]);
        assert!(all.contains(&"服务员".to_owned()) && all.contains(&"态度".to_owned()), "{all:?}");
        // Stop words and single characters are left out.
        assert!(!all.iter().any(|t| t == "但是" || t == "很" || t == "，"), "{all:?}");
    }

    #[test]
    fn english_by_words_without_stop_words() {
        let k = keywords(["The food was cold and slow", "slow service, cold food!", "Great food"].iter().copied(), 3);
        assert_eq!(
            k,
            vec![
                Keyword { term: "food".into(), count: 3 },
                Keyword { term: "cold".into(), count: 2 },
                Keyword { term: "slow".into(), count: 2 },
            ]
        );
    }

    #[test]
    fn a_term_counts_once_per_answer() {
        let k = keywords(["慢慢慢，上菜上菜上菜"].iter().copied(), 10);
        assert_eq!(k.iter().find(|k| k.term == "上菜").map(|k| k.count), Some(1));
    }
}
