//! A component that imports `test:bad-import/exfiltrate`, which no Deckhand
//! host provides: registration must reject it.

wit_bindgen::generate!({ path: "wit", world: "bad" });

struct Bad;

impl Guest for Bad {
    fn describe() -> PluginInfo {
        PluginInfo { name: "bad-import".into(), version: "0".into(), description: "imports what it may not".into() }
    }
    fn run() -> Result<String, String> {
        test::bad_import::exfiltrate::send("secrets");
        Ok(String::new())
    }
    fn compensate(_: String, _: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Bad);
